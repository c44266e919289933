package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/config"
)

// newTokensScript is the wrk script that sends a new token on every
// request.
//
//go:embed newtokens.lua
var newTokensScript []byte

// issueTokens signs sizes[i] tokens for service to the administrator into
// files[i], one a line, with an App opened in-process on the handler's
// store: the handler finds the signing key there. No token appears twice
// across the files. It uses every CPU: nothing else runs meanwhile.
func issueTokens(ctx context.Context, s config.Settings, service string, files []string, sizes []int) error {
	app, err := functions.NewApp(ctx, s, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer app.Close()
	svc, ok := app.Config.Service(service)
	if !ok {
		return fmt.Errorf("no service %s", service)
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	tokens := make([]string, total)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make([]error, runtime.NumCPU())
	)
	for w := range errs {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < total; i = int(next.Add(1) - 1) {
				tok, _, err := app.Tokens.Issue(ctx, service, identities["token"].Subject, svc.TokenLifetime, svc.TokenRefreshAfter)
				if err != nil {
					errs[w] = err
					return
				}
				tokens[i] = tok.AccessToken
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	seen := make(map[string]struct{}, total)
	for _, t := range tokens {
		if _, dup := seen[t]; dup {
			return errors.New("the same token was issued twice")
		}
		seen[t] = struct{}{}
	}
	for i, name := range files {
		if err := writeLines(name, tokens[:sizes[i]]); err != nil {
			return err
		}
		tokens = tokens[sizes[i]:]
	}
	return nil
}

func writeLines(name string, lines []string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, l := range lines {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// verifyCost is what one signature verification costs.
type verifyCost struct {
	// RSA is RS256 alone: SHA-256 of the signing input and
	// rsa.VerifyPKCS1v15 on the handler's 2048-bit key.
	RSA time.Duration `json:"rsa"`
	// JWT is the peer's whole golang-jwt parse and verify.
	JWT time.Duration `json:"jwt"`
}

// verifyCostProbe measures, with testing.Benchmark, the cost of verifying
// the token read from stdin, and prints it as a verifyCost. It runs as a
// subprocess pinned to the servers' CPU. Arguments: jwks-url issuer
// audience.
func verifyCostProbe(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: verify-cost jwks-url issuer audience < token")
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	raw := strings.TrimSpace(string(in))
	v, err := newPeerVerifier(args[0], args[1], args[2])
	if err != nil {
		return err
	}
	if _, err := v.verify(raw); err != nil {
		return fmt.Errorf("the probe's token: %w", err)
	}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &jwt.RegisteredClaims{})
	if err != nil {
		return err
	}
	pub, err := v.key(tok)
	if err != nil {
		return err
	}
	dot := strings.LastIndexByte(raw, '.')
	input := raw[:dot]
	sig, err := base64.RawURLEncoding.DecodeString(raw[dot+1:])
	if err != nil {
		return err
	}
	testing.Init()
	rsaRes := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			h := sha256.Sum256([]byte(input))
			if err := rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, h[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	jwtRes := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			if _, err := v.verify(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	if rsaRes.N == 0 || jwtRes.N == 0 {
		return errors.New("the verification benchmark failed")
	}
	return json.NewEncoder(os.Stdout).Encode(verifyCost{RSA: time.Duration(rsaRes.NsPerOp()), JWT: time.Duration(jwtRes.NsPerOp())})
}

// measureVerify runs the probe on CPU 0, where the servers run.
func measureVerify(self, jwksURL, issuer, audience, token string) (verifyCost, error) {
	cmd := exec.Command("taskset", "-c", "0", self, "verify-cost", jwksURL, issuer, audience)
	cmd.Stdin = strings.NewReader(token)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return verifyCost{}, fmt.Errorf("verify-cost: %w", err)
	}
	var c verifyCost
	if err := json.Unmarshal(out, &c); err != nil {
		return verifyCost{}, fmt.Errorf("verify-cost printed %q: %w", out, err)
	}
	return c, nil
}

// ceiling is the bare server's throughput if each request also paid
// verify: 1 / (1/bare + verify).
func ceiling(bareRPS float64, verify time.Duration) float64 {
	return 1 / (1/bareRPS + verify.Seconds())
}
