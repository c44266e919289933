package infra_test

import (
	"strings"
	"testing"
	"time"

	"github.com/modelauth/modelauth/infra"
)

func TestParseBicep(t *testing.T) {
	src := `@description('n')
param name string = 'x'
param count int

// a comment
resource one 'Microsoft.A/b@2024-01-01' = {
  name: 'one' // trailing
  properties: {
    list: ['a', 'b']
    nested: { deep: true }
    text: '''
multi ' line
'''
    loop: [for i in range(0, 2): { n: i }]
  }
}

resource two 'Microsoft.A/b/c@2024-01-01' existing = if (count > 0) {
  parent: one
  'quoted-key': union({ a: 'b' }, extra)
}
`
	f, err := infra.ParseBicep(src)
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Params["name"]; p.Type != "string" || p.Default != "'x'" || len(p.Decorators) != 1 {
		t.Errorf("param name = %+v", p)
	}
	if p := f.Params["count"]; p.Type != "int" || p.Default != "" {
		t.Errorf("param count = %+v", p)
	}
	one, ok := f.Resource("one")
	if !ok || one.Type != "Microsoft.A/b" || one.APIVersion != "2024-01-01" || one.Existing || one.Condition != "" {
		t.Fatalf("resource one = %+v", one)
	}
	for path, want := range map[string]string{
		"name": "'one'", "properties.nested.deep": "true",
		"properties.text": "'''\nmulti ' line\n'''", "properties.loop": "[for i in range(0, 2): { n: i }]",
	} {
		if got := one.Body.String(path); got != want {
			t.Errorf("one %s = %q; want %q", path, got, want)
		}
	}
	if l, _ := one.Body.Get("properties.list").([]any); len(l) != 2 || l[0] != "'a'" || l[1] != "'b'" {
		t.Errorf("one properties.list = %v", one.Body.Get("properties.list"))
	}
	two, _ := f.Resource("two")
	if !two.Existing || two.Condition != "count > 0" || two.Body.String("parent") != "one" {
		t.Errorf("resource two = %+v", two)
	}
	if obj, _ := two.Body.Get("quoted-key").(infra.BicepObject); obj.String("a") != "'b'" {
		t.Errorf("two's union literal = %v", two.Body.Get("quoted-key"))
	}
}

func TestParseBicepRefuses(t *testing.T) {
	for name, src := range map[string]string{
		"a resource line it does not know": "resource x 'T@v' existing {\n}\n",
		"an object without its }":          "resource x 'T@v' = {\n  a: {\n",
		"a string without its end":         "resource x 'T@v' = {\n  a: 'b\n}\n",
		"a ''' string without its end":     "resource x 'T@v' = {\n  a: '''b\n}\n",
		"a member twice":                   "resource x 'T@v' = {\n  a: 1\n  a: 2\n}\n",
		"a member without a name":          "resource x 'T@v' = {\n  : 1\n}\n",
	} {
		if f, err := infra.ParseBicep(src); err == nil {
			t.Errorf("%s: ParseBicep = %+v; want an error", name, f)
		} else if !strings.Contains(err.Error(), "line") {
			t.Errorf("%s: error %q does not name the line", name, err)
		}
	}
}

func TestDocSettings(t *testing.T) {
	table := "intro\n## App settings\n\ntext\n\n| setting | default | platforms | meaning |\n|---|---|---|---|\n" +
		"| `A` | x | Azure, local | a |\n| `B`, `C` | y | Lambda | b |\n\nafter\n| `D` | z | Azure | not in the table |\n"
	s, err := infra.DocSettings([]byte(table))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s); got != 3 {
		t.Errorf("%d settings; want A, B and C: %v", got, s)
	}
	if !s.For(infra.Azure)["A"] || !s.For(infra.Local)["A"] || s.For(infra.Lambda)["A"] || !s.For(infra.Lambda)["C"] {
		t.Errorf("settings = %v", s)
	}
	for name, text := range map[string]string{
		"no section":       "| `A` | x | Azure | a |\n",
		"no rows":          "## App settings\n\n| setting | default | platforms | meaning |\n|---|---|---|---|\n",
		"unknown platform": "## App settings\n| `A` | x | Azure, Windows | a |\n",
		"a setting twice":  "## App settings\n| `A` | x | Azure | a |\n| `A` | x | local | a |\n",
	} {
		if _, err := infra.DocSettings([]byte(text)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	missing, extra := infra.Compare(infra.NameSet([]string{"a", "b"}), infra.NameSet([]string{"b", "c"}))
	if len(missing) != 1 || missing[0] != "c" || len(extra) != 1 || extra[0] != "a" {
		t.Errorf("Compare = %v, %v; want [c], [a]", missing, extra)
	}
}

func TestSchedulerCron(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 2, 0, 0, time.UTC)
	for expr, want := range map[string]string{
		"cron(0/5 * * * ? *)":      "2026-03-01T10:05:00Z",
		"cron(0 0/6 * * ? *)":      "2026-03-01T12:00:00Z",
		"cron(30 2 ? * MON-FRI *)": "2026-03-02T02:30:00Z",
	} {
		s, err := infra.SchedulerCron(expr)
		if err != nil {
			t.Errorf("SchedulerCron(%q): %v", expr, err)
			continue
		}
		if got := s.Next(at).Format(time.RFC3339); got != want {
			t.Errorf("SchedulerCron(%q).Next = %s; want %s", expr, got, want)
		}
	}
	for _, expr := range []string{
		"rate(5 minutes)", "cron(0/5 * * * ?)", "cron(0/5 * * * ? 2027)", "cron(0 0 * * * *)",
		"cron(0 0 ? * ? *)", "cron(0 0 L * ? *)", "cron(0 0 ? * 2 *)", "cron(0 0 ? * MON#1 *)",
	} {
		if _, err := infra.SchedulerCron(expr); err == nil {
			t.Errorf("SchedulerCron(%q): no error", expr)
		}
	}
}

func TestSchedulerRate(t *testing.T) {
	for expr, want := range map[string]time.Duration{
		"rate(1 minute)": time.Minute, "rate(5 minutes)": 5 * time.Minute,
		"rate(1 hour)": time.Hour, "rate(2 days)": 48 * time.Hour,
	} {
		if got, err := infra.SchedulerRate(expr); err != nil || got != want {
			t.Errorf("SchedulerRate(%q) = %v, %v; want %v", expr, got, err, want)
		}
	}
	for _, expr := range []string{
		"cron(* * * * ? *)", "rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(-1 minute)",
		"rate(01 minute)", "rate(1 second)", "rate(1)", "rate(1 minute", "rate(1 minute 2)",
	} {
		if _, err := infra.SchedulerRate(expr); err == nil {
			t.Errorf("SchedulerRate(%q): no error", expr)
		}
	}
}

// FuzzParseBicep: the reader never panics, and what it accepts it accepts
// again after a trailing newline.
func FuzzParseBicep(f *testing.F) {
	for _, name := range []string{"azure/main.bicep", "azure/eventgrid.bicep", "azure/consumer-access.bicep"} {
		src, err := infra.File(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add("resource x 'T@v' = {\n a:")
	f.Fuzz(func(t *testing.T, src string) {
		bf, err := infra.ParseBicep(src)
		if err != nil {
			return
		}
		again, err := infra.ParseBicep(src + "\n")
		if err != nil || len(again.Resources) != len(bf.Resources) || len(again.Params) != len(bf.Params) {
			t.Errorf("accepted %q, but not with a trailing newline: %v", src, err)
		}
	})
}
