package functions

// This file wires the rotation of Azure ML online endpoints' own keys
// (docs/design.md section 15).

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"

	"github.com/modelauth/modelauth/shared/amlendpoint"
	"github.com/modelauth/modelauth/shared/azureml"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/keysecret"
	"github.com/modelauth/modelauth/shared/rotation"
)

// initEndpoints builds the endpoints' rotator: the staged protocol of
// package rotation over the aml-* secrets, with each endpoint as its
// remote target, reached with the app's Azure credential (a managed
// identity in Azure) through Azure Resource Manager of the endpoint's
// cloud.
func (a *App) initEndpoints() error {
	if len(a.Config.Endpoints) == 0 {
		return nil
	}
	s := a.Settings
	cred, err := a.azureCredential()
	if err != nil {
		return fmt.Errorf("endpoints: %w", err)
	}
	target := &amlendpoint.Target{Endpoints: map[string]amlendpoint.Endpoint{}, Settle: s.EndpointSettleDelay, Log: a.Log}
	for _, e := range a.Config.Endpoints {
		ep, err := azureml.ParseEndpointID(e.ID)
		if err != nil {
			return fmt.Errorf("config: %w: endpoint %q: %w", config.ErrInvalid, e.Name, err)
		}
		c, err := azureml.NewKeysClient(ep, cred, &azureml.KeysOptions{
			Options:          azureml.Options{ClientOptions: azcore.ClientOptions{Cloud: cloudOf(e.Cloud)}},
			PollInterval:     s.EndpointPollInterval,
			OperationTimeout: s.EndpointOperationTimeout,
		})
		if err != nil {
			return fmt.Errorf("endpoint %q: %w", e.Name, err)
		}
		aep := amlendpoint.Endpoint{Client: c}
		if e.Probe != nil {
			aep.Probe = &amlendpoint.Probe{Body: e.Probe.Body, Deployment: e.Probe.Deployment}
		}
		target.Endpoints[e.Name] = aep
	}
	a.Endpoints = &rotation.Rotator{
		Store: a.Store, Target: target, Policy: a.Config.EndpointPolicy, Family: keysecret.Endpoints,
		NewKey: azureml.GenerateKey, CheckKey: azureml.CheckKey, Log: a.Log,
	}
	return nil
}

// cloudOf maps a configured cloud to azcore's: a named one, or a private
// one by its Resource Manager endpoint and audience.
func cloudOf(c config.Cloud) cloud.Configuration {
	switch c.Name {
	case config.CloudGovernment:
		return cloud.AzureGovernment
	case config.CloudChina:
		return cloud.AzureChina
	case "":
		return cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: c.ResourceManager, Audience: c.Audience},
		}}
	}
	return cloud.AzurePublic
}
