package functions

// This file wires the prefetch of consumers' tokens: this app's own, another
// modelauth app's and Azure ML online endpoints'.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/client"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/prefetch"
)

// initPrefetch builds each consumer's token source: this app's issuer,
// another modelauth app (with the credential from the consumer's
// credentialSetting), or an Azure ML online endpoint (with the app's Azure
// credential).
func (a *App) initPrefetch() error {
	s := a.Settings
	getenv := s.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var consumers []prefetch.Consumer
	for _, c := range a.Config.Consumers {
		pc := prefetch.Consumer{Name: c.Name, Service: c.Service}
		switch c.Source {
		case config.SourceSelf:
			pc.Source = a.selfTokens(c)
		case config.SourceModelauth:
			cred := strings.TrimSpace(getenv(c.CredentialSetting))
			if cred == "" {
				return fmt.Errorf("config: %w: consumer %q: the app setting %s (its credentialSetting) is empty", config.ErrInvalid, c.Name, c.CredentialSetting)
			}
			pc.Source = (&client.Client{BaseURL: c.URL, Credential: client.Static(cred)}).TokenSource(c.Service)
		case config.SourceAzureML:
			ep, err := azureml.ParseEndpointID(c.Endpoint)
			if err != nil {
				return fmt.Errorf("config: %w: consumer %q: %w", config.ErrInvalid, c.Name, err)
			}
			azureCred, err := a.azureCredential()
			if err != nil {
				return fmt.Errorf("consumer %q: %w", c.Name, err)
			}
			if pc.Source, err = azureml.NewTokenSource(ep, azureCred, nil); err != nil {
				return fmt.Errorf("consumer %q: %w", c.Name, err)
			}
		}
		consumers = append(consumers, pc)
	}
	o := prefetch.DefaultOptions()
	o.Lead, o.Period, o.Logger = s.PrefetchLead, s.PrefetchPeriod, a.Log
	a.Prefetcher = prefetch.New(a.Store, consumers, &o)
	return nil
}

// selfTokens issues a consumer's tokens in-process, as get_token would to
// a caller named consumer:<name>.
func (a *App) selfTokens(c config.Consumer) client.TokenSource {
	svc, _ := a.Config.Service(c.Service)
	return client.TokenSourceFunc(func(ctx context.Context) (*client.Token, error) {
		tok, issued, err := a.Tokens.Issue(ctx, svc.Name, "consumer:"+c.Name, svc.TokenLifetime, svc.TokenRefreshAfter)
		if err != nil {
			return nil, err
		}
		a.Log.Info("audit", "event", "get_token", "subject", "consumer:"+c.Name, "service", svc.Name,
			"jti", issued.JTI, "kid", issued.Kid, "expiryOn", tok.ExpiryOn)
		return &client.Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType,
			ExpiresOn: time.Unix(tok.ExpiryOn, 0), RefreshAfter: time.Unix(tok.RefreshAfter, 0)}, nil
	})
}
