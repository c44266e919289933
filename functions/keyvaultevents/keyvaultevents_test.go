package keyvaultevents

import "testing"

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
