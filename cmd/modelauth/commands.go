package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/modelauth/modelauth/shared/client"
)

func keysGet(fs *flag.FlagSet) action {
	active := fs.Bool("active", false, "print the active key alone")
	return func(ctx context.Context, c *cli, mc *client.Client, service string) error {
		k, err := mc.GetKeys(ctx, service)
		if err != nil {
			return err
		}
		if *active && c.opts.output == "text" {
			_, err := fmt.Fprintln(c.stdout, k.Active())
			return err
		}
		return c.printKeys(k)
	}
}

func keysRegen(fs *flag.FlagSet) action {
	keyType := fs.String("type", "", "the key to replace: Primary or Secondary")
	value := fs.String("value", "", "the new key (default: a generated one)")
	return func(ctx context.Context, c *cli, mc *client.Client, service string) error {
		switch *keyType {
		case "Primary", "Secondary":
		case "":
			return usagef("missing --type Primary|Secondary")
		default:
			return usagef("--type must be Primary or Secondary")
		}
		k, err := mc.RegenKey(ctx, service, *keyType, *value)
		if err != nil {
			return err
		}
		return c.printKeys(k)
	}
}

func keysRotate(*flag.FlagSet) action {
	return func(ctx context.Context, c *cli, mc *client.Client, service string) error {
		r, err := mc.Rotate(ctx, service)
		if err != nil {
			return err
		}
		if c.opts.output == "json" {
			return c.printJSON(r)
		}
		line := "rotation: " + r.Rotation.Outcome
		if r.Rotation.KeyType != "" {
			line += " " + r.Rotation.KeyType
		}
		if r.Rotation.ID != "" {
			line += " " + r.Rotation.ID
		}
		if _, err := fmt.Fprintln(c.stdout, line); err != nil {
			return err
		}
		return c.printKeys(r.Keys)
	}
}

func tokenGet(*flag.FlagSet) action {
	return func(ctx context.Context, c *cli, mc *client.Client, service string) error {
		t, err := mc.GetToken(ctx, service)
		if err != nil {
			return err
		}
		return c.printToken(service, t)
	}
}

func tokenWatch(*flag.FlagSet) action {
	return func(ctx context.Context, c *cli, mc *client.Client, service string) error {
		return watch(ctx, mc.TokenSource(service), c.opts.timeout, func(t *client.Token) error {
			return c.printToken(service, t)
		}, func(err error, retry time.Duration) {
			msg, _ := describe(err, c.opts)
			fmt.Fprintf(c.stderr, "modelauth: token watch %s: %s; trying again in %v\n", service, msg, retry)
		})
	}
}

func validateCmd(fs *flag.FlagSet) action {
	cred := fs.String("credential", "", "the key or token to check (default $"+envCredential+")")
	return func(ctx context.Context, c *cli, mc *client.Client, service string) error {
		v := *cred
		if v == "" {
			v = c.getenv(envCredential)
		}
		if v == "" {
			return usagef("no credential to check: set --credential or " + envCredential)
		}
		id, err := mc.Validate(ctx, service, v)
		if err != nil {
			return err
		}
		if c.opts.output == "json" {
			return c.printJSON(id)
		}
		line := fmt.Sprintf("valid: service=%s subject=%s authType=%s", id.Service, id.Subject, id.AuthType)
		if id.KeyType != "" {
			line += " keyType=" + id.KeyType
		}
		_, err = fmt.Fprintln(c.stdout, line)
		return err
	}
}

// printKeys writes keys to stdout, one per line with the active one
// marked, or as the app's JSON.
func (c *cli) printKeys(k client.Keys) error {
	if c.opts.output == "json" {
		return c.printJSON(k)
	}
	mark := func(t string) string {
		if k.ActiveKeyType == t || (t == "Primary" && k.ActiveKeyType == "") {
			return "  (active)"
		}
		return ""
	}
	_, err := fmt.Fprintf(c.stdout, "Primary    %s%s\nSecondary  %s%s\n",
		k.PrimaryKey, mark("Primary"), k.SecondaryKey, mark("Secondary"))
	return err
}

// wireToken is get_token's JSON shape, which --output json prints.
type wireToken struct {
	AccessToken  string `json:"accessToken"`
	TokenType    string `json:"tokenType"`
	ExpiryOn     int64  `json:"expiryOn"`
	RefreshAfter int64  `json:"refreshAfter"`
}

// printToken writes t: the raw token alone on stdout and a line describing
// it on stderr, or the app's JSON on stdout.
func (c *cli) printToken(service string, t *client.Token) error {
	if c.opts.output == "json" {
		return c.printJSON(wireToken{t.AccessToken, t.TokenType, t.ExpiresOn.Unix(), t.RefreshAfter.Unix()})
	}
	if _, err := fmt.Fprintln(c.stdout, t.AccessToken); err != nil {
		return err
	}
	now := c.now()
	in := func(at time.Time) string { return at.Sub(now).Round(time.Second).String() }
	fmt.Fprintf(c.stderr, "modelauth: token for %s: expires %s (in %s), refresh after %s (in %s)\n", service,
		t.ExpiresOn.UTC().Format(time.RFC3339), in(t.ExpiresOn), t.RefreshAfter.UTC().Format(time.RFC3339), in(t.RefreshAfter))
	return nil
}

// printJSON writes v as one line of JSON to stdout.
func (c *cli) printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}
