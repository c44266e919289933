package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/rotation"
)

// Endpoint is an Azure ML online endpoint in key mode whose keys the app
// rotates into the store (docs/design.md section 15): aml-<name>-primary,
// -secondary and -active.
type Endpoint struct {
	// Name is the endpoint's name in modelauth (the service-name pattern,
	// unique among services and endpoints): its secrets' and routes' name.
	Name string
	// ID is the endpoint's ARM resource ID.
	ID string
	// Rotation is the rotation policy, as for a key-mode service.
	Rotation rotation.Policy
	// Cloud is the Azure cloud the endpoint is in.
	Cloud Cloud
	// Probe, if set, is a request the rotation sends to the scoring URI
	// with a new key before telling clients the key.
	Probe *Probe
}

// Cloud names an Azure cloud: one of the clouds azcore knows by name
// (AzurePublic, the default; AzureGovernment; AzureChina) or a private
// one by its Resource Manager URL and token audience.
type Cloud struct {
	Name            string // "" for a private cloud
	ResourceManager string // https URL; "" for a named cloud
	Audience        string // "" for a named cloud
}

// Cloud names.
const (
	CloudPublic     = "AzurePublic"
	CloudGovernment = "AzureGovernment"
	CloudChina      = "AzureChina"
)

// Probe is a safe scoring request: POST Body (JSON) to the scoring URI,
// to Deployment if set (the azureml-model-deployment header).
type Probe struct {
	Body       []byte
	Deployment string
}

type fileEndpoint struct {
	Name            string          `json:"name"`
	ID              string          `json:"id"`
	RotationPeriod  *string         `json:"rotationPeriod"`
	RefreshInterval *string         `json:"refreshInterval"`
	Cloud           json.RawMessage `json:"cloud"`
	Probe           *struct {
		Body       json.RawMessage `json:"body"`
		Deployment string          `json:"deployment"`
	} `json:"probe"`
}

// maxProbeBody caps a probe's body.
const maxProbeBody = 16 << 10

// checkEndpoints checks the endpoints against each other and the services.
func (c *Config) checkEndpoints(fes []fileEndpoint) []error {
	var problems []error
	c.endpointByName = map[string]int{}
	for i, fe := range fes {
		e, err := checkEndpoint(i, fe)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if _, dup := c.endpointByName[e.Name]; dup {
			problems = append(problems, fmt.Errorf("endpoint %q is listed twice", e.Name))
			continue
		}
		if _, svc := c.byName[e.Name]; svc {
			problems = append(problems, fmt.Errorf("endpoint %q has the name of a service: names are shared by the management routes, give one of them another", e.Name))
			continue
		}
		for _, o := range c.Endpoints {
			if strings.EqualFold(o.ID, e.ID) {
				problems = append(problems, fmt.Errorf("endpoints %q and %q name the same online endpoint: two rotations of one endpoint's keys would undo each other", o.Name, e.Name))
			}
		}
		c.endpointByName[e.Name] = len(c.Endpoints)
		c.Endpoints = append(c.Endpoints, e)
	}
	return problems
}

func checkEndpoint(i int, fe fileEndpoint) (Endpoint, error) {
	if !ServiceNameRE.MatchString(fe.Name) {
		return Endpoint{}, fmt.Errorf("endpoints[%d]: name %q must match %s", i, clip(fe.Name), ServiceNameRE)
	}
	e := Endpoint{Name: fe.Name, ID: fe.ID, Rotation: DefaultPolicy()}
	fail := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("endpoint %q: "+format, append([]any{fe.Name}, args...)...)
	}
	if !endpointRE.MatchString(fe.ID) || strings.ContainsAny(fe.ID, "?#% \\") {
		return fail("id %q: want the online endpoint's resource ID, /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/onlineEndpoints/<name>", clip(fe.ID))
	}
	for _, d := range []struct {
		field string
		raw   *string
		dst   *time.Duration
	}{{"rotationPeriod", fe.RotationPeriod, &e.Rotation.Period}, {"refreshInterval", fe.RefreshInterval, &e.Rotation.RefreshInterval}} {
		if d.raw == nil {
			continue
		}
		v, err := positiveDuration(d.field, *d.raw)
		if err != nil {
			return fail("%w", err)
		}
		*d.dst = v
	}
	if err := e.Rotation.Check(); err != nil {
		return fail("%w", err)
	}
	cl, err := parseCloud(fe.Cloud)
	if err != nil {
		return fail("cloud: %w", err)
	}
	e.Cloud = cl
	if p := fe.Probe; p != nil {
		body := bytes.TrimSpace(p.Body)
		switch {
		case len(body) == 0 || bytes.Equal(body, []byte("null")):
			return fail("probe: want a body, the JSON of a safe scoring request")
		case len(body) > maxProbeBody:
			return fail("probe: the body is larger than %d bytes", maxProbeBody)
		case strings.ContainsAny(p.Deployment, "\r\n"):
			return fail("probe: deployment %q is not a deployment name", clip(p.Deployment))
		}
		e.Probe = &Probe{Body: body, Deployment: p.Deployment}
	}
	return e, nil
}

// parseCloud reads "cloud": absent (AzurePublic), a name, or
// {"resourceManager": "https://...", "audience": "https://..."}.
func parseCloud(raw json.RawMessage) (Cloud, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return Cloud{Name: CloudPublic}, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		for _, n := range []string{CloudPublic, CloudGovernment, CloudChina} {
			if strings.EqualFold(name, n) {
				return Cloud{Name: n}, nil
			}
		}
		return Cloud{}, fmt.Errorf("%q is not one of %s, %s, %s (or an object with resourceManager and audience)", clip(name), CloudPublic, CloudGovernment, CloudChina)
	}
	var obj struct {
		ResourceManager string `json:"resourceManager"`
		Audience        string `json:"audience"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil {
		return Cloud{}, errors.New(`want a cloud name or {"resourceManager": "https://...", "audience": "https://..."}`)
	}
	for _, f := range []struct{ name, v string }{{"resourceManager", obj.ResourceManager}, {"audience", obj.Audience}} {
		u, err := url.Parse(f.v)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return Cloud{}, fmt.Errorf("%s %q: want an https URL", f.name, clip(f.v))
		}
	}
	return Cloud{ResourceManager: obj.ResourceManager, Audience: obj.Audience}, nil
}

// Endpoint returns the named endpoint.
func (c *Config) Endpoint(name string) (Endpoint, bool) {
	i, ok := c.endpointByName[name]
	if !ok {
		return Endpoint{}, false
	}
	return c.Endpoints[i], true
}

// EndpointPolicy returns the named endpoint's rotation policy, or the
// default. It suits [rotation.Rotator.Policy].
func (c *Config) EndpointPolicy(name string) rotation.Policy {
	if e, ok := c.Endpoint(name); ok {
		return e.Rotation
	}
	return DefaultPolicy()
}
