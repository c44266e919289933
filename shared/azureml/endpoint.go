package azureml

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// ErrInvalidEndpoint: an endpoint ID or an [Endpoint] that does not name a
// managed online endpoint.
var ErrInvalidEndpoint = errors.New("azureml: invalid online endpoint")

// Endpoint names an Azure Machine Learning managed online endpoint.
type Endpoint struct {
	SubscriptionID string
	ResourceGroup  string
	Workspace      string
	Name           string
}

// The segment names of an online endpoint's resource ID, in order; a value
// follows each but the provider's.
const (
	segSubscriptions  = "subscriptions"
	segResourceGroups = "resourceGroups"
	segProviders      = "providers"
	provider          = "Microsoft.MachineLearningServices"
	segWorkspaces     = "workspaces"
	segOnlineEndpoint = "onlineEndpoints"
)

// ParseEndpointID parses an online endpoint's Azure resource ID,
//
//	/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/onlineEndpoints/{name}
//
// as the portal and `az ml online-endpoint show --query id` print it. The
// segment names (subscriptions, resourceGroups, providers, the provider,
// workspaces, onlineEndpoints) match in any ASCII case, as Azure Resource
// Manager's do; anything else is refused with an error wrapping
// [ErrInvalidEndpoint]: a missing leading slash, missing or empty segments,
// another provider or resource type, segments after the endpoint's name (a
// deployment, say) and a trailing slash.
func ParseEndpointID(id string) (Endpoint, error) {
	if id == "" {
		return Endpoint{}, fmt.Errorf("%w: empty resource ID", ErrInvalidEndpoint)
	}
	rest, ok := strings.CutPrefix(id, "/")
	if !ok {
		return Endpoint{}, fmt.Errorf("%w: resource ID %q does not start with /subscriptions/", ErrInvalidEndpoint, id)
	}
	parts := strings.Split(rest, "/")
	names := [...]struct {
		i    int
		want string
	}{{0, segSubscriptions}, {2, segResourceGroups}, {4, segProviders}, {5, provider}, {6, segWorkspaces}, {8, segOnlineEndpoint}}
	for _, n := range names {
		if n.i >= len(parts) {
			return Endpoint{}, fmt.Errorf("%w: resource ID %q has no %s segment", ErrInvalidEndpoint, id, n.want)
		}
		if !asciiEqualFold(parts[n.i], n.want) {
			return Endpoint{}, fmt.Errorf("%w: resource ID %q has %q where %s belongs", ErrInvalidEndpoint, id, parts[n.i], n.want)
		}
	}
	switch {
	case len(parts) < 10:
		return Endpoint{}, fmt.Errorf("%w: resource ID %q has no endpoint name", ErrInvalidEndpoint, id)
	case len(parts) > 10:
		return Endpoint{}, fmt.Errorf("%w: resource ID %q has segments after the endpoint name", ErrInvalidEndpoint, id)
	}
	ep := Endpoint{SubscriptionID: parts[1], ResourceGroup: parts[3], Workspace: parts[7], Name: parts[9]}
	if err := ep.validate(); err != nil {
		return Endpoint{}, err
	}
	return ep, nil
}

// asciiEqualFold reports whether a and b are equal up to the case of ASCII
// letters (strings.EqualFold would also match the Kelvin sign and the long
// s).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ID returns the endpoint's resource ID, which [ParseEndpointID] parses.
func (e Endpoint) ID() string {
	return "/" + segSubscriptions + "/" + e.SubscriptionID +
		"/" + segResourceGroups + "/" + e.ResourceGroup +
		"/" + segProviders + "/" + provider +
		"/" + segWorkspaces + "/" + e.Workspace +
		"/" + segOnlineEndpoint + "/" + e.Name
}

// String returns the endpoint's resource ID.
func (e Endpoint) String() string { return e.ID() }

// validate checks that every field is a usable path segment: not empty,
// and without a slash, a space, a control character or URL syntax (?, #,
// %), which no Azure name allows.
func (e Endpoint) validate() error {
	for _, f := range [...]struct{ name, v string }{
		{"subscription ID", e.SubscriptionID},
		{"resource group", e.ResourceGroup},
		{"workspace", e.Workspace},
		{"endpoint name", e.Name},
	} {
		if f.v == "" {
			return fmt.Errorf("%w: empty %s", ErrInvalidEndpoint, f.name)
		}
		for _, r := range f.v {
			if badNameRune(r) {
				return fmt.Errorf("%w: %s %q contains %q", ErrInvalidEndpoint, f.name, f.v, r)
			}
		}
	}
	return nil
}

func badNameRune(r rune) bool {
	return r == '/' || r == '?' || r == '#' || r == '%' || r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}

// path is the endpoint's resource path, its segments escaped.
func (e Endpoint) path() string {
	return "/" + segSubscriptions + "/" + url.PathEscape(e.SubscriptionID) +
		"/" + segResourceGroups + "/" + url.PathEscape(e.ResourceGroup) +
		"/" + segProviders + "/" + provider +
		"/" + segWorkspaces + "/" + url.PathEscape(e.Workspace) +
		"/" + segOnlineEndpoint + "/" + url.PathEscape(e.Name)
}
