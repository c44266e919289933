package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const churnID = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/churn"

func TestEndpoints(t *testing.T) {
	c, err := Parse([]byte(`{"services":[{"name":"iris"}],"endpoints":[
		{"name":"churn","id":"` + churnID + `"},
		{"name":"gov","id":"` + strings.Replace(churnID, "churn", "gov", 1) + `","cloud":"azuregovernment","rotationPeriod":"240h","refreshInterval":"12h",
		 "probe":{"body":{"data":[[1,2]]},"deployment":"blue"}},
		{"name":"private","id":"` + strings.Replace(churnID, "churn", "private", 1) + `","cloud":{"resourceManager":"https://management.contoso.example","audience":"https://management.contoso.example/"}}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	churn, ok := c.Endpoint("churn")
	if !ok || churn.ID != churnID || churn.Cloud.Name != CloudPublic || churn.Rotation != DefaultPolicy() || churn.Probe != nil {
		t.Errorf("churn = %+v, %v", churn, ok)
	}
	gov, _ := c.Endpoint("gov")
	if gov.Cloud.Name != CloudGovernment || gov.Rotation.Period != 240*time.Hour || gov.Rotation.RefreshInterval != 12*time.Hour ||
		gov.Probe == nil || string(gov.Probe.Body) != `{"data":[[1,2]]}` || gov.Probe.Deployment != "blue" {
		t.Errorf("gov = %+v", gov)
	}
	if c.EndpointPolicy("gov") != gov.Rotation || c.EndpointPolicy("nope") != DefaultPolicy() {
		t.Error("EndpointPolicy")
	}
	priv, _ := c.Endpoint("private")
	if priv.Cloud.Name != "" || priv.Cloud.ResourceManager != "https://management.contoso.example" || priv.Cloud.Audience != "https://management.contoso.example/" {
		t.Errorf("private = %+v", priv.Cloud)
	}
	if _, ok := c.Endpoint("iris"); ok {
		t.Error("a service is taken for an endpoint")
	}
}

func TestEndpointsRefused(t *testing.T) {
	other := strings.Replace(churnID, "churn", "other", 1)
	for name, tc := range map[string]struct{ doc, want string }{
		"bad id":           {`{"name":"e","id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x"}`, "resource ID"},
		"deployment id":    {`{"name":"e","id":"` + churnID + `/deployments/blue"}`, "resource ID"},
		"empty id":         {`{"name":"e"}`, "resource ID"},
		"id with query":    {`{"name":"e","id":"` + churnID + `?x=1"}`, "resource ID"},
		"bad name":         {`{"name":"Churn","id":"` + churnID + `"}`, "must match"},
		"duplicate":        {`{"name":"e","id":"` + churnID + `"},{"name":"e","id":"` + other + `"}`, "listed twice"},
		"same endpoint":    {`{"name":"a","id":"` + churnID + `"},{"name":"b","id":"` + strings.ToLower(churnID) + `"}`, "same online endpoint"},
		"service name":     {`{"name":"iris","id":"` + churnID + `"}`, "name of a service"},
		"short period":     {`{"name":"e","id":"` + churnID + `","rotationPeriod":"24h","refreshInterval":"24h"}`, "twice the refresh interval"},
		"bad duration":     {`{"name":"e","id":"` + churnID + `","rotationPeriod":"a month"}`, "Go duration"},
		"unknown cloud":    {`{"name":"e","id":"` + churnID + `","cloud":"Mars"}`, "not one of"},
		"http cloud":       {`{"name":"e","id":"` + churnID + `","cloud":{"resourceManager":"http://x","audience":"https://x"}}`, "https URL"},
		"cloud field":      {`{"name":"e","id":"` + churnID + `","cloud":{"endpoint":"https://x"}}`, "cloud name or"},
		"probe no body":    {`{"name":"e","id":"` + churnID + `","probe":{}}`, "want a body"},
		"unknown field":    {`{"name":"e","id":"` + churnID + `","authMode":"key"}`, "unknown field"},
		"probe deployment": {`{"name":"e","id":"` + churnID + `","probe":{"body":1,"deployment":"a\nb"}}`, "not a deployment"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(`{"services":[{"name":"iris"}],"endpoints":[` + tc.doc + `]}`))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}
