package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Token sources of a consumer.
const (
	// SourceSelf: this app issues the consumer's tokens in-process.
	SourceSelf = "self"
	// SourceModelauth: another modelauth app's get_token, at URL.
	SourceModelauth = "modelauth"
	// SourceAzureML: an Azure ML managed online endpoint's token API.
	SourceAzureML = "azureml"
)

// Consumer is a client whose token the prefetchtokens function keeps fresh
// in the secret store, as tok-<name>.
type Consumer struct {
	Name string
	// Service is the token-mode service the tokens are for (self and
	// modelauth sources).
	Service string
	Source  string
	// URL is a remote modelauth app's base URL with /api (modelauth).
	URL string
	// CredentialSetting names the app setting holding the credential for
	// the remote app (modelauth): its administrator key or a key with the
	// right to get tokens. In Azure, a Key Vault reference.
	CredentialSetting string
	// Endpoint is the online endpoint's ARM resource ID (azureml).
	Endpoint string
}

type fileConsumer struct {
	Name              string `json:"name"`
	Service           string `json:"service"`
	Source            string `json:"source"`
	URL               string `json:"url"`
	CredentialSetting string `json:"credentialSetting"`
	Endpoint          string `json:"endpoint"`
}

var settingNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// endpointRE is an Azure ML online endpoint's ARM resource ID.
var endpointRE = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+/onlineEndpoints/[^/]+$`)

// checkConsumers checks the consumers against the services.
func (c *Config) checkConsumers(fcs []fileConsumer) []error {
	var problems []error
	seen := map[string]bool{}
	for i, fc := range fcs {
		if !ServiceNameRE.MatchString(fc.Name) {
			problems = append(problems, fmt.Errorf("consumers[%d]: name %q must match %s", i, clip(fc.Name), ServiceNameRE))
			continue
		}
		if seen[fc.Name] {
			problems = append(problems, fmt.Errorf("consumer %q is listed twice", fc.Name))
			continue
		}
		seen[fc.Name] = true
		cons := Consumer(fc)
		if cons.Source == "" {
			cons.Source = SourceSelf
		}
		if err := c.checkConsumer(cons); err != nil {
			problems = append(problems, fmt.Errorf("consumer %q: %w", fc.Name, err))
			continue
		}
		c.Consumers = append(c.Consumers, cons)
	}
	return problems
}

func (c *Config) checkConsumer(cons Consumer) error {
	switch cons.Source {
	case SourceSelf:
		svc, ok := c.Service(cons.Service)
		switch {
		case !ok:
			return fmt.Errorf("service %q is not configured", clip(cons.Service))
		case svc.AuthMode != AuthToken:
			return fmt.Errorf("service %q uses %s auth: tokens are issued only for services in token mode", svc.Name, svc.AuthMode)
		case cons.URL != "" || cons.CredentialSetting != "" || cons.Endpoint != "":
			return errors.New("source self takes no url, credentialSetting or endpoint")
		}
	case SourceModelauth:
		u, err := url.Parse(cons.URL)
		switch {
		case !ServiceNameRE.MatchString(cons.Service):
			return fmt.Errorf("service %q must match %s", clip(cons.Service), ServiceNameRE)
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "":
			return fmt.Errorf("url %q: want the remote app's base URL with /api, such as https://other.azurewebsites.net/api", clip(cons.URL))
		case !settingNameRE.MatchString(cons.CredentialSetting):
			return fmt.Errorf("credentialSetting %q: want the name of the app setting that holds the remote app's credential", clip(cons.CredentialSetting))
		case cons.Endpoint != "":
			return errors.New("source modelauth takes no endpoint")
		}
	case SourceAzureML:
		switch {
		case !endpointRE.MatchString(cons.Endpoint):
			return fmt.Errorf("endpoint %q: want the online endpoint's resource ID, /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/onlineEndpoints/<name>", clip(cons.Endpoint))
		case cons.Service != "" || cons.URL != "" || cons.CredentialSetting != "":
			return errors.New("source azureml takes only an endpoint")
		}
	default:
		return fmt.Errorf("source %q is not one of %s, %s, %s", clip(cons.Source), SourceSelf, SourceModelauth, SourceAzureML)
	}
	return nil
}

// Consumer returns the named consumer.
func (c *Config) Consumer(name string) (Consumer, bool) {
	for _, cons := range c.Consumers {
		if strings.EqualFold(cons.Name, name) {
			return cons, true
		}
	}
	return Consumer{}, false
}
