// Package azurekeyvault is the secret store driver for Azure Key Vault,
// through the azsecrets client.
//
// Open returns a [secretstore.Store] over a vault; the credential usually
// comes from [NewCredential] (DefaultAzureCredential: managed identity in
// Azure, AZURE_CLIENT_ID for a user-assigned one, environment credentials,
// `az login` locally).
//
// # Retries
//
// Reads, listing and property updates are retried by the azcore pipeline
// (MaxRetries, RetryDelay doubling up to MaxRetryDelay, TryTimeout per try)
// on 408, 429, 500, 502, 503 and 504, honouring Retry-After up to
// MaxRetryDelay. A write (a new version) is retried only on 429, which Key
// Vault answers before doing anything: any other failure of a write may
// have created the version, so the caller re-reads instead of writing again.
// A 429 whose Retry-After is longer than MaxRetryDelay comes back at once as
// Throttled, with the delay in [secretstore.Error.RetryAfter].
//
// # Errors
//
// Errors are mapped from the HTTP status in one table (see [ErrorCode]):
// 400 InvalidArgument, 401 and 403 PermissionDenied (403 for a disabled
// secret: Disabled), 404 NotFound, 409 Conflict, 429 Throttled, 408 and 5xx
// Unavailable; transport failures and timeouts are Unavailable; Entra
// refusing the credential is PermissionDenied.
package azurekeyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/modelauth/modelauth/shared/secretstore"
	"github.com/modelauth/modelauth/shared/secretstore/driver"
)

// Retry settings, chosen so that a validator's store read gives up well
// within a request's time: at most 1 + MaxRetries tries of TryTimeout each.
const (
	DefaultMaxRetries    = 2
	DefaultRetryDelay    = 200 * time.Millisecond
	DefaultMaxRetryDelay = 2 * time.Second
	DefaultTryTimeout    = 10 * time.Second
)

// Options tune the driver; nil means [DefaultOptions]. Fields are used as
// given.
type Options struct {
	MaxRetries    int32         // retries after the first try; 0: none
	RetryDelay    time.Duration // first delay between tries; positive
	MaxRetryDelay time.Duration // cap on a delay, and on an honoured Retry-After; positive
	TryTimeout    time.Duration // cap on one try; positive
	// Transport sends the requests; nil means azcore's default.
	Transport policy.Transporter
}

// DefaultOptions returns the defaults above.
func DefaultOptions() Options {
	return Options{MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay, MaxRetryDelay: DefaultMaxRetryDelay, TryTimeout: DefaultTryTimeout}
}

type kvDriver struct {
	client *azsecrets.Client
	retry  policy.RetryOptions
}

var _ driver.Driver = (*kvDriver)(nil)

// Open returns a Store over the vault at vaultURL.
func Open(vaultURL string, cred azcore.TokenCredential, opts *Options) (*secretstore.Store, error) {
	d, err := open(vaultURL, cred, opts)
	if err != nil {
		return nil, err
	}
	return secretstore.New(d), nil
}

func open(vaultURL string, cred azcore.TokenCredential, opts *Options) (*kvDriver, error) {
	if !strings.HasPrefix(vaultURL, "https://") {
		return nil, fmt.Errorf("azurekeyvault: the vault URL must start with https://")
	}
	o := DefaultOptions()
	if opts != nil {
		o = *opts
	}
	if o.MaxRetries < 0 || o.RetryDelay <= 0 || o.MaxRetryDelay <= 0 || o.TryTimeout <= 0 {
		return nil, fmt.Errorf("azurekeyvault: retry options %+v: want retries of 0 or more and positive delays", o)
	}
	maxRetries := o.MaxRetries
	if maxRetries == 0 {
		maxRetries = -1 // azcore's "none"; its 0 is its own default
	}
	retry := policy.RetryOptions{
		MaxRetries:    maxRetries,
		RetryDelay:    o.RetryDelay,
		MaxRetryDelay: o.MaxRetryDelay,
		TryTimeout:    o.TryTimeout,
	}
	client, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: retry, Transport: o.Transport},
	})
	if err != nil {
		return nil, fmt.Errorf("azurekeyvault: %w", err)
	}
	return &kvDriver{client: client, retry: retry}, nil
}

func (d *kvDriver) SetSecret(ctx context.Context, name string, p driver.SetParams) (driver.Properties, error) {
	// Only a throttled write is retried: see the package doc.
	retry := d.retry
	retry.ShouldRetry = func(resp *http.Response, err error) bool {
		return err == nil && resp.StatusCode == http.StatusTooManyRequests
	}
	enabled := p.Enabled
	params := azsecrets.SetSecretParameters{
		Value: &p.Value,
		SecretAttributes: &azsecrets.SecretAttributes{
			Enabled: &enabled, Expires: p.Expires, NotBefore: p.NotBefore,
		},
		Tags: toTags(p.Tags),
	}
	if p.ContentType != "" {
		params.ContentType = &p.ContentType
	}
	resp, err := d.client.SetSecret(policy.WithRetryOptions(ctx, retry), name, params, nil)
	if err != nil {
		return driver.Properties{}, err
	}
	return properties(resp.ID, resp.Attributes, resp.ContentType, resp.Tags), nil
}

func (d *kvDriver) GetSecret(ctx context.Context, name, version string) (driver.Secret, error) {
	resp, err := d.client.GetSecret(ctx, name, version, nil)
	if err != nil {
		return driver.Secret{}, err
	}
	s := driver.Secret{Properties: properties(resp.ID, resp.Attributes, resp.ContentType, resp.Tags)}
	if resp.Value != nil {
		s.Value = *resp.Value
	}
	return s, nil
}

func (d *kvDriver) ListVersions(ctx context.Context, name string) ([]driver.Properties, error) {
	var out []driver.Properties
	pager := d.client.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, sp := range page.Value {
			if sp != nil {
				out = append(out, properties(sp.ID, sp.Attributes, sp.ContentType, sp.Tags))
			}
		}
	}
	if len(out) == 0 {
		return nil, errNoVersions
	}
	// Key Vault promises no order, and neither does this driver: callers
	// learn the newest version from GetSecret. For people reading a
	// listing (tests, secretctl), it is shown by created time, newest
	// first, same-second versions in reverse listing order: the newest
	// first when the vault lists oldest first, as it appears to, but
	// nothing may rely on that.
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b driver.Properties) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// errNoVersions: a secret listed with no versions is one that does not exist.
var errNoVersions = errors.New("azurekeyvault: the secret has no versions")

func (d *kvDriver) UpdateProperties(ctx context.Context, name, version string, u driver.Update) (driver.Properties, error) {
	if version == "" {
		// The REST operation needs a version: the newest, which reading
		// the secret without a version names.
		var err error
		if version, err = d.newestVersion(ctx, name); err != nil {
			return driver.Properties{}, err
		}
	}
	params := azsecrets.UpdateSecretPropertiesParameters{ContentType: u.ContentType}
	if u.Enabled != nil || u.Expires != nil || u.NotBefore != nil {
		params.SecretAttributes = &azsecrets.SecretAttributes{Enabled: u.Enabled, Expires: u.Expires, NotBefore: u.NotBefore}
	}
	if u.Tags != nil {
		params.Tags = toTags(u.Tags)
	}
	resp, err := d.client.UpdateSecretProperties(ctx, name, version, params, nil)
	if err != nil {
		return driver.Properties{}, err
	}
	return properties(resp.ID, resp.Attributes, resp.ContentType, resp.Tags), nil
}

// newestVersion returns the id of a secret's newest version, as reading
// the secret without a version answers it. A disabled newest version
// answers 403 without its id: then the newest is taken from a listing, the
// disabled one created last; of several created in that same second, the one the
// listing's presentation order puts first, which Key Vault does not
// promise to be the newest.
func (d *kvDriver) newestVersion(ctx context.Context, name string) (string, error) {
	sec, err := d.GetSecret(ctx, name, "")
	if err == nil {
		return sec.Version, nil
	}
	if ErrorCode(err) != driver.Disabled {
		return "", err
	}
	versions, err := d.ListVersions(ctx, name)
	if err != nil {
		return "", err
	}
	for _, v := range versions { // the newest is disabled: skip enabled ones
		if !v.Enabled {
			return v.Version, nil
		}
	}
	return versions[0].Version, nil
}

func (d *kvDriver) Close() error { return nil }

// ErrorCode maps an error to a driver code from its HTTP status.
func (d *kvDriver) ErrorCode(err error) driver.ErrorCode { return ErrorCode(err) }

// ErrorCode is the one table from Key Vault's HTTP statuses to store codes.
func ErrorCode(err error) driver.ErrorCode {
	if errors.Is(err, errNoVersions) {
		return driver.NotFound
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return driver.PermissionDenied // Entra refused the app's credentials
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) {
			return driver.Unknown
		}
		return driver.Unavailable // transport failures and timeouts
	}
	switch s := re.StatusCode; {
	case s == http.StatusBadRequest:
		return driver.InvalidArgument
	case s == http.StatusUnauthorized:
		return driver.PermissionDenied
	case s == http.StatusForbidden:
		if disabled(re) {
			return driver.Disabled
		}
		return driver.PermissionDenied
	case s == http.StatusNotFound:
		return driver.NotFound
	case s == http.StatusConflict:
		return driver.Conflict
	case s == http.StatusTooManyRequests:
		return driver.Throttled
	case s == http.StatusRequestTimeout || s >= 500:
		return driver.Unavailable
	}
	return driver.Unknown
}

// RetryAfter returns the delay a throttled response asked for, or 0.
func (d *kvDriver) RetryAfter(err error) time.Duration {
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		return 0
	}
	v := re.RawResponse.Header.Get("Retry-After")
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// disabled tells a 403 for a disabled secret from a 403 for a missing
// permission: Key Vault answers both with the code Forbidden, and says
// "disabled" in the message (inner code SecretDisabled).
func disabled(re *azcore.ResponseError) bool {
	if re.RawResponse == nil {
		return false
	}
	body, err := runtime.Payload(re.RawResponse) // buffered: safe to read again
	if err != nil {
		return false
	}
	var doc struct {
		Error struct {
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return false
	}
	if ie := doc.Error.InnerError; ie != nil && ie.Code == "SecretDisabled" {
		return true
	}
	return strings.Contains(strings.ToLower(doc.Error.Message), "disabled")
}

func toTags(tags map[string]string) map[string]*string {
	out := make(map[string]*string, len(tags))
	for k, v := range tags {
		out[k] = &v
	}
	return out
}

func properties(id *azsecrets.ID, attrs *azsecrets.SecretAttributes, contentType *string, tags map[string]*string) driver.Properties {
	p := driver.Properties{Tags: make(map[string]string, len(tags))}
	if id != nil {
		p.Name, p.Version = strings.ToLower(id.Name()), id.Version()
	}
	if contentType != nil {
		p.ContentType = *contentType
	}
	if attrs != nil {
		p.Enabled = attrs.Enabled == nil || *attrs.Enabled
		p.Expires, p.NotBefore = utc(attrs.Expires), utc(attrs.NotBefore)
		if attrs.Created != nil {
			p.Created = attrs.Created.UTC()
		}
		if attrs.Updated != nil {
			p.Updated = attrs.Updated.UTC()
		}
	}
	for k, v := range tags {
		if v != nil {
			p.Tags[k] = *v
		}
	}
	return p
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
