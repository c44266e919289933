// Package keyvaultevents is the keyvaultevents Event Grid function
// (docs/design.md sections 2 and 5), subscribed to the vault's system topic.
//
// SecretNearExpiry and SecretExpired for a service key secret
// (svc-<service>-primary, -secondary or -active) of a key-mode service run
// the same due-check as the rotatekeys timer for that service, and rotate
// only if due: an event is a backstop for a stopped timer, never a trigger
// of its own. The same events for the signing-key secret run the signing
// keys' due-check.
//
// SecretNewVersionCreated for a secret the change journal tracks (the
// service key secrets and active copies, admin-key and signing-key;
// keysecret.Tracked) records the version in the journal, unless it is
// there already (the app's own writes), so that every instance learns of
// a version written from outside the app (the portal, the CLI) as of the
// app's own writes; it fails, for Event Grid to deliver it again, when
// the record cannot be written. The same event for any other secret is
// ignored.
//
// SecretNearExpiry and SecretExpired for an Azure ML endpoint's secret
// (aml-<name>-primary, -secondary or -active; docs/design.md section 15)
// run that endpoint's due-check, which also compares its keys with the
// store's.
//
// Every other event (other types, other secrets such as tok-*, expiry
// events of admin-key, other object types, unknown services, services not
// in key mode) is ignored with a log line saying why. Because the outcome
// depends only on the keys' state, the journal's records and the time,
// duplicate, late and out-of-order deliveries are harmless. The host
// invokes it with the invocation envelope at /keyvaultevents.
package keyvaultevents

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/modelauth/modelauth/shared/azfunc"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
	"github.com/modelauth/modelauth/shared/signingkey"
)

// Binding is the Event Grid trigger binding's name in function.json.
const Binding = "event"

// Journal records a version written from outside the app:
// [journal.Journal].
type Journal interface {
	// Record says what it did: "recorded", or why not ("already_known",
	// "no_such_version", "not_tracked").
	Record(ctx context.Context, name, version string) (string, error)
}

// Rotator rotates a service's keys when due: [rotation.Rotator].
type Rotator interface {
	RotateIfDue(ctx context.Context, service string) (rotation.Result, error)
}

// SigningKeys rotates the token signing keys when due: [signingkey.Set].
type SigningKeys interface {
	RotateIfDue(ctx context.Context) (signingkey.Result, error)
}

// Function serves the keyvaultevents function.
type Function struct {
	Config  *config.Config
	Rotator Rotator
	// SigningKeys, if set, answers events for the signing-key secret.
	SigningKeys SigningKeys
	// Endpoints, if set, answers SecretNearExpiry and SecretExpired for
	// an Azure ML endpoint's secrets (aml-<name>-primary, -secondary,
	// -active) with that endpoint's due-check.
	Endpoints Rotator
	// Journal records SecretNewVersionCreated of the secrets validators
	// need (a version written in the portal or with the CLI), so that
	// every instance learns of it as of the app's own writes.
	Journal Journal
	Log     *slog.Logger
}

// Handler returns the function's invocation handler.
func (f *Function) Handler() http.Handler {
	return azfunc.EventGridHandler(Binding, f.Handle, f.Log)
}

// Handle handles one event. It fails only when a rotation it ran, or the
// record of a new version, failed, so that Event Grid delivers the event
// again.
func (f *Function) Handle(ctx context.Context, ev azfunc.EventGridEvent) error {
	ignore := func(why string, args ...any) error {
		f.Log.Info("keyvaultevent_ignored", append([]any{"eventId", ev.ID, "eventType", ev.EventType, "reason", why}, args...)...)
		azfunc.Logf(ctx, "keyvaultevents: ignored: %s", why)
		return nil
	}
	if ev.EventType != azfunc.SecretNearExpiry && ev.EventType != azfunc.SecretExpired && ev.EventType != azfunc.SecretNewVersionCreated {
		return ignore("event_type")
	}
	var data azfunc.KeyVaultEventData
	if err := ev.DecodeData(&data); err != nil {
		data = azfunc.KeyVaultEventData{} // the subject alone names the secret
	}
	if data.ObjectType != "" && !strings.EqualFold(data.ObjectType, "Secret") {
		return ignore("object_type", "objectType", data.ObjectType)
	}
	name := data.ObjectName
	if name == "" {
		name = ev.Subject
	}
	if ev.EventType == azfunc.SecretNewVersionCreated {
		return f.record(ctx, ev, name, data.Version, ignore)
	}
	if strings.EqualFold(name, signingkey.SecretName) {
		if f.SigningKeys == nil {
			return ignore("no_token_services", "secret", name)
		}
		f.Log.Info("keyvaultevent", "eventId", ev.ID, "eventType", ev.EventType, "secret", name)
		res, err := f.SigningKeys.RotateIfDue(ctx)
		if err != nil {
			azfunc.Logf(ctx, "keyvaultevents: signing keys: failed: %v", err)
			return fmt.Errorf("signing keys: %w", err)
		}
		azfunc.Logf(ctx, "keyvaultevents: signing keys: %s", res.Outcome)
		return nil
	}
	if ep, ok := keysecret.Endpoints.Of(name); ok {
		if _, known := f.Config.Endpoint(ep); !known || f.Endpoints == nil {
			return ignore("unknown_endpoint", "secret", name)
		}
		f.Log.Info("keyvaultevent", "eventId", ev.ID, "eventType", ev.EventType, "endpoint", ep, "secret", name)
		res, err := f.Endpoints.RotateIfDue(ctx, ep)
		if err != nil {
			return err
		}
		azfunc.Logf(ctx, "keyvaultevents: %s: %s", ep, res.Outcome)
		return nil
	}
	service, ok := keysecret.ServiceOf(name)
	if !ok {
		return ignore("not_a_service_key", "secret", clip(name))
	}
	svc, ok := f.Config.Service(service)
	if !ok {
		return ignore("unknown_service", "secret", name)
	}
	if svc.AuthMode != config.AuthKey {
		return ignore("not_key_mode", "service", svc.Name, "authMode", string(svc.AuthMode))
	}
	f.Log.Info("keyvaultevent", "eventId", ev.ID, "eventType", ev.EventType, "service", svc.Name, "secret", name)
	res, err := f.Rotator.RotateIfDue(ctx, svc.Name)
	if err != nil {
		return err
	}
	azfunc.Logf(ctx, "keyvaultevents: %s: %s", svc.Name, res.Outcome)
	return nil
}

// record puts a new version of a tracked secret in the change journal,
// unless the journal holds it already (the app's own writes). It fails
// when the journal cannot, so that Event Grid delivers the event again.
func (f *Function) record(ctx context.Context, ev azfunc.EventGridEvent, name, version string, ignore func(string, ...any) error) error {
	switch {
	case f.Journal == nil:
		return ignore("no_journal", "secret", clip(name))
	case !keysecret.Tracked(name):
		return ignore("not_tracked", "secret", clip(name))
	case !versionRE.MatchString(version):
		return ignore("no_version", "secret", name)
	}
	outcome, err := f.Journal.Record(ctx, name, version)
	if err != nil {
		azfunc.Logf(ctx, "keyvaultevents: %s: recording version %s failed: %v", name, version, err)
		return fmt.Errorf("recording %s: %w", name, err)
	}
	if outcome != "recorded" {
		return ignore(outcome, "secret", name, "version", version)
	}
	f.Log.Info("keyvaultevent", "eventId", ev.ID, "eventType", ev.EventType, "secret", name, "version", version)
	azfunc.Logf(ctx, "keyvaultevents: %s: version %s recorded", name, version)
	return nil
}

// versionRE is the form of a Key Vault version id.
var versionRE = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// clip shortens a name from an event for the log.
func clip(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
