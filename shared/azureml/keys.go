package azureml

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
)

// The key operations of an online endpoint whose auth mode is key
// (docs/azureml-rest.md has the specification's facts, with sources):
//
//	GET  {endpoint}?api-version=...                 Online Endpoints - Get: properties.authMode, scoringUri
//	POST {endpoint}/listKeys?api-version=...        Online Endpoints - List Keys: {"primaryKey","secondaryKey"}
//	POST {endpoint}/regenerateKeys?api-version=...  Online Endpoints - Regenerate Keys: {"keyType","keyValue"}, a long-running operation

// Auth modes of an online endpoint, as the REST API spells them (the CLI
// and the Python SDK spell them key, aml_token and aad_token: compare with
// strings.EqualFold after removing underscores, as [IsKeyMode] does).
const (
	AuthModeKey      = "Key"
	AuthModeAMLToken = "AMLToken"
	AuthModeAADToken = "AADToken"
)

// IsKeyMode reports whether authMode is key auth, in any spelling Azure
// ML uses (Key, key).
func IsKeyMode(authMode string) bool { return strings.EqualFold(authMode, AuthModeKey) }

// ErrNotKeyMode: the endpoint does not use key auth, so it has no keys to
// rotate.
var ErrNotKeyMode = errors.New("azureml: the online endpoint does not use key auth")

// ErrOperationTimeout: a Regenerate Keys operation did not end within
// [KeysOptions.OperationTimeout]. The key may still change when it does.
var ErrOperationTimeout = errors.New("azureml: the regenerateKeys operation did not end in time")

// Defaults of [KeysOptions].
const (
	DefaultPollInterval     = 5 * time.Second
	DefaultOperationTimeout = 10 * time.Minute
)

// KeysOptions tune a [KeysClient]; nil means the defaults.
type KeysOptions struct {
	Options
	// PollInterval is the wait between two polls of a long-running
	// operation when the answer has no Retry-After (azcore's
	// PollUntilDone Frequency; at least one second outside tests).
	// Default [DefaultPollInterval].
	PollInterval time.Duration
	// OperationTimeout bounds a Regenerate Keys operation from its start
	// to its end, polls included. Default [DefaultOperationTimeout].
	OperationTimeout time.Duration
}

// KeysClient reads and replaces one online endpoint's keys. It is safe for
// concurrent use.
type KeysClient struct {
	c       *conn
	poll    time.Duration
	timeout time.Duration
}

// NewKeysClient returns a KeysClient for ep that authenticates to Azure
// Resource Manager with cred, as [NewTokenSource] does.
func NewKeysClient(ep Endpoint, cred azcore.TokenCredential, opts *KeysOptions) (*KeysClient, error) {
	var o KeysOptions
	if opts != nil {
		o = *opts
	}
	c, err := newConn(ep, cred, &o.Options)
	if err != nil {
		return nil, err
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.OperationTimeout <= 0 {
		o.OperationTimeout = DefaultOperationTimeout
	}
	return &KeysClient{c: c, poll: o.PollInterval, timeout: o.OperationTimeout}, nil
}

// Endpoint returns the client's endpoint.
func (k *KeysClient) Endpoint() Endpoint { return k.c.ep }

// Info is what Get reports of an endpoint.
type Info struct {
	AuthMode          string
	ScoringURI        string
	ProvisioningState string
}

// Get reads the endpoint's auth mode and scoring URI.
func (k *KeysClient) Get(ctx context.Context) (Info, error) {
	var w struct {
		Properties struct {
			AuthMode          string `json:"authMode"`
			ScoringURI        string `json:"scoringUri"`
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if err := k.call(ctx, http.MethodGet, "", nil, &w); err != nil {
		return Info{}, err
	}
	p := w.Properties
	return Info{AuthMode: p.AuthMode, ScoringURI: p.ScoringURI, ProvisioningState: p.ProvisioningState}, nil
}

// Keys are an endpoint's two keys. Printing or logging them shows neither.
type Keys struct {
	Primary, Secondary string
}

func (Keys) String() string               { return "azureml.Keys{redacted}" }
func (k Keys) GoString() string           { return k.String() }
func (Keys) LogValue() slog.Value         { return slog.StringValue("redacted") }
func (k Keys) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// ListKeys reads the endpoint's keys.
func (k *KeysClient) ListKeys(ctx context.Context) (Keys, error) {
	var w struct {
		PrimaryKey   *string `json:"primaryKey"`
		SecondaryKey *string `json:"secondaryKey"`
	}
	if err := k.call(ctx, http.MethodPost, "/listKeys", nil, &w); err != nil {
		return Keys{}, err
	}
	if w.PrimaryKey == nil || w.SecondaryKey == nil || *w.PrimaryKey == "" || *w.SecondaryKey == "" {
		return Keys{}, fmt.Errorf("%w: online endpoint %s: listKeys answered without both keys", ErrBadResponse, k.c.ep.Name)
	}
	return Keys{Primary: *w.PrimaryKey, Secondary: *w.SecondaryKey}, nil
}

// RegenerateKeys sets the endpoint's keyType key ("Primary" or
// "Secondary") to value, and follows the long-running operation to its end
// with azcore's poller, within the client's OperationTimeout: the old value
// stops working when it returns nil. A failed operation is an *[Error]
// with the operation's error code; one that did not end in time wraps
// [ErrOperationTimeout]. No error holds the value.
func (k *KeysClient) RegenerateKeys(ctx context.Context, keyType, value string) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	body, err := json.Marshal(struct {
		KeyType  string `json:"keyType"`
		KeyValue string `json:"keyValue,omitempty"`
	}{keyType, value})
	if err != nil {
		return err
	}
	req, err := k.request(ctx, http.MethodPost, "/regenerateKeys", body)
	if err != nil {
		return err
	}
	resp, err := k.c.pl.Do(req)
	if err != nil {
		return k.failed(ctx, err)
	}
	if !runtime.HasStatusCode(resp, http.StatusOK, http.StatusAccepted) {
		return responseError(resp)
	}
	poller, err := runtime.NewPoller(resp, k.c.pl, &runtime.NewPollerOptions[struct{}]{
		FinalStateVia: runtime.FinalStateViaLocation,
	})
	if err != nil {
		return fmt.Errorf("%w: online endpoint %s: regenerateKeys: %w", ErrBadResponse, k.c.ep.Name, err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: k.poll}); err != nil {
		return k.failed(ctx, err)
	}
	return nil
}

// failed maps an error of the pipeline or the poller.
func (k *KeysClient) failed(ctx context.Context, err error) error {
	var re *azcore.ResponseError
	switch {
	case errors.As(err, &re):
		e := &Error{StatusCode: re.StatusCode, Code: re.ErrorCode}
		if re.RawResponse != nil {
			if m := responseError(re.RawResponse).(*Error); m.Code == e.Code || e.Code == "" {
				e.Code, e.Message, e.CorrelationID = m.Code, m.Message, m.CorrelationID
			}
		}
		return e
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: online endpoint %s, after %v", ErrOperationTimeout, k.c.ep.Name, k.timeout)
	}
	return fmt.Errorf("azureml: online endpoint %s: %w", k.c.ep.Name, err)
}

func (k *KeysClient) request(ctx context.Context, method, op string, body []byte) (*policy.Request, error) {
	req, err := runtime.NewRequest(ctx, method, k.c.url(op))
	if err != nil {
		return nil, fmt.Errorf("azureml: online endpoint %s: %w", k.c.ep.Name, err)
	}
	req.Raw().Header.Set("Accept", "application/json")
	if body != nil {
		if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)), "application/json"); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// call sends one request and decodes a 200 answer into out.
func (k *KeysClient) call(ctx context.Context, method, op string, body []byte, out any) error {
	req, err := k.request(ctx, method, op, body)
	if err != nil {
		return err
	}
	resp, err := k.c.pl.Do(req)
	if err != nil {
		return k.failed(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(resp)
	}
	b, err := runtime.Payload(resp)
	if err != nil {
		return fmt.Errorf("azureml: online endpoint %s: reading the answer: %w", k.c.ep.Name, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		// Never quote the body: a listKeys answer holds keys.
		return fmt.Errorf("%w: online endpoint %s: %s", ErrBadResponse, k.c.ep.Name, describeJSONError(err))
	}
	return nil
}

// KeyAlphabet is the alphabet of the keys [GenerateKey] makes: ASCII
// letters and digits. The specification sets no pattern or length on
// keyValue (docs/azureml-rest.md); the keys Azure ML generates itself are
// 32 letters and digits, so that is what is sent, which no client header
// or tool can mangle.
const KeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// KeyLength is the length of a generated key, as Azure ML's own: 32
// characters of a 62-letter alphabet, 190 bits.
const KeyLength = 32

// MaxKeyLength caps a key a user supplies to regen_key for an endpoint.
const MaxKeyLength = 128

// ErrKeyFormat: a user-supplied endpoint key is not 32 to 128 ASCII
// letters and digits.
var ErrKeyFormat = errors.New("azureml: an endpoint key must be 32 to 128 ASCII letters and digits")

// CheckKey checks a user-supplied endpoint key: [KeyLength] to
// [MaxKeyLength] characters of [KeyAlphabet]. Its time depends only on the
// key's length.
func CheckKey(k string) error {
	if len(k) < KeyLength || len(k) > MaxKeyLength {
		return ErrKeyFormat
	}
	bad := 0
	for i := 0; i < len(k); i++ {
		c := int(k[i])
		digit := (c - '0') | ('9' - c)
		upper := (c - 'A') | ('Z' - c)
		lower := (c - 'a') | ('z' - c)
		// Each term is negative when c is outside its range.
		bad |= digit & upper & lower
	}
	if bad < 0 {
		return ErrKeyFormat
	}
	return nil
}

// GenerateKey returns a new random key for an online endpoint.
func GenerateKey() (string, error) {
	b := make([]byte, KeyLength)
	const n = byte(len(KeyAlphabet))
	const limit = 256 - 256%int(n) // rejection sampling: no bias
	var buf [64]byte
	for i := 0; i < len(b); {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("azureml: reading random bytes: %w", err)
		}
		for _, c := range buf {
			if int(c) < limit && i < len(b) {
				b[i] = KeyAlphabet[c%n]
				i++
			}
		}
	}
	return string(b), nil
}
