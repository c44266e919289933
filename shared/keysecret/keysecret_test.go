package keysecret

import (
	"strconv"
	"testing"
	"time"
)

func TestServiceOf(t *testing.T) {
	for name, want := range map[string]string{
		"svc-iris-primary":        "iris",
		"svc-iris-secondary":      "iris",
		"svc-iris-active":         "iris",
		"SVC-Iris-Primary":        "iris",
		"svc-a-b-c-active":        "a-b-c",
		"svc-x-primary-secondary": "x-primary",
		"svc-iris":                "",
		"svc--primary":            "",
		"svc-iris-tertiary":       "",
		"tok-iris":                "",
		"admin-key":               "",
		"signing-key":             "",
		"svc-Iris_1-primary":      "",
		"":                        "",
	} {
		got, ok := ServiceOf(name)
		if got != want || ok != (want != "") {
			t.Errorf("ServiceOf(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

// TestNamesAndTags pins the contract's spelling: these names and values are
// in every deployed vault.
func TestNamesAndTags(t *testing.T) {
	for got, want := range map[string]string{
		KeySecret("iris", Primary):   "svc-iris-primary",
		KeySecret("iris", Secondary): "svc-iris-secondary",
		ActiveSecret("iris"):         "svc-iris-active",
		TokenSecret("c"):             "tok-c",
		AdminKeySecret:               "admin-key",
		SigningKeySecret:             "signing-key",
	} {
		if got != want {
			t.Errorf("name %q; want %q", got, want)
		}
	}
	st := ServiceTags("iris")
	if st["managed-by"] != "modelauth" || st["kind"] != "service-key" || st["service"] != "iris" || st["state"] != "current" || len(st) != 4 {
		t.Errorf("ServiceTags = %v", st)
	}
	at := ActiveTags("iris", Secondary)
	if at["kind"] != "active-key" || at["slot"] != "secondary" || KeyTypeOfSlot(at) != Secondary || KeyTypeOfSlot(nil) != Primary {
		t.Errorf("ActiveTags = %v", at)
	}
	due := time.Unix(1_800_000_000, 0)
	if got := Expiry(due); got.Sub(due) != 30*24*time.Hour {
		t.Errorf("Expiry(due) = due + %v; want 30 days", got.Sub(due))
	}
}

func TestCopyLags(t *testing.T) {
	current := map[string]string{TagState: StateCurrent}
	for _, tt := range []struct {
		name                string
		copyTags, keyTags   map[string]string
		copyValue, keyValue string
		want                bool
	}{
		{"same value", nil, current, "a", "a", false},
		{"behind", nil, current, "a", "b", true},
		{"copy moved by a rotation", map[string]string{TagRotation: "r"}, current, "a", "b", false},
		{"copy activated", map[string]string{TagActivated: "1"}, current, "a", "b", false},
		{"key activated", nil, map[string]string{TagActivated: "1"}, "a", "b", false},
		{"key staged", nil, map[string]string{TagState: StateStaged}, "a", "b", false},
		{"key disabled", nil, current, "a", "", false},
	} {
		if got := CopyLags(tt.copyTags, tt.copyValue, tt.keyTags, tt.keyValue); got != tt.want {
			t.Errorf("%s: CopyLags = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]KeyType{"Primary": Primary, "primary": Primary, "SECONDARY": Secondary, "": "", "Tertiary": ""} {
		got, ok := ParseKeyType(in)
		if got != want || ok != (want != "") {
			t.Errorf("ParseKeyType(%q) = %q, %v", in, got, ok)
		}
	}
}

// TestEndpointFamily pins the endpoint family's names and tags, and that
// neither family claims the other's secrets.
func TestEndpointFamily(t *testing.T) {
	for got, want := range map[string]string{
		Endpoints.Key("churn", Primary):                           "aml-churn-primary",
		Endpoints.Key("churn", Secondary):                         "aml-churn-secondary",
		Endpoints.Active("churn"):                                 "aml-churn-active",
		Endpoints.KeyTags("churn")[TagKind]:                       "endpoint-key",
		Endpoints.ActiveTags("churn", Secondary)[TagKind]:         "endpoint-active-key",
		Endpoints.ActiveTags("churn", Secondary)[TagSlot]:         "secondary",
		Endpoints.KeyTags("churn")[TagService]:                    "churn",
		Services.KeyTags("iris")[TagKind]:                         "service-key",
		Fingerprint("k"):                                          "8254c329a92850f6d539dd376f4816ee",
		strconv.Itoa(len(Fingerprint("a much longer key value"))): "32",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	for name, want := range map[string]string{
		"aml-churn-primary": "churn", "AML-Churn-Active": "churn", "svc-churn-primary": "", "aml-churn": "",
	} {
		if got, ok := Endpoints.Of(name); got != want || ok != (want != "") {
			t.Errorf("Endpoints.Of(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := ServiceOf("aml-churn-primary"); ok || Tracked("aml-churn-active") {
		t.Error("an endpoint's secret is taken for a service's")
	}
}
