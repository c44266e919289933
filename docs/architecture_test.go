package docs_test

// This file checks the import rules of docs/architecture.md against the
// module's packages: the rule table says what each package may import,
// the test-helper table which packages production code must leave to tests.
// Only the non-test imports of each package are checked (go list's
// .Imports); the doc says why.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// rule is one row of the rule table: the packages that pattern covers may
// import the module packages that match allow and match no except.
type rule struct {
	pattern string
	allow   []string
	except  []string
	line    int
}

// rules is what architecture.md says.
type rules struct {
	rows []rule
	// helpers maps each test helper to the patterns of the production
	// packages that may import it besides other test helpers.
	helpers map[string][]string
	// text is the whole document, for the check that it names every
	// package.
	text string
}

const (
	ruleHeader   = "package pattern"
	helperHeader = "test helper"
	nothing      = "nothing in the module"
)

var (
	tokenRE   = regexp.MustCompile("`([^`]*)`")
	patternRE = regexp.MustCompile(`^(\.|[a-z0-9_.-]+(/[a-z0-9_.-]+)*)(/\*)?$`)
)

// parseRules reads the rule table and the test-helper table out of doc:
// the tables whose first header cell is ruleHeader and helperHeader.
func parseRules(doc string) (rules, error) {
	rs := rules{helpers: map[string][]string{}, text: doc}
	var (
		table   string // the table being read: ruleHeader, helperHeader or ""
		skipSep bool
		found   = map[string]bool{}
		seen    = map[string]int{}
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			table = ""
			continue
		}
		cells := splitRow(line)
		if table == "" {
			switch h := strings.ToLower(cells[0]); h {
			case ruleHeader, helperHeader:
				if found[h] {
					return rs, fmt.Errorf("line %d: a second table headed %q", n, h)
				}
				found[h], table, skipSep = true, h, true
			default:
				table = "other"
			}
			continue
		}
		if skipSep {
			skipSep = false
			continue
		}
		if table == "other" {
			continue
		}
		if len(cells) < 2 {
			return rs, fmt.Errorf("line %d: want at least two cells: %s", n, line)
		}
		pats := tokens(cells[0])
		if len(pats) != 1 {
			return rs, fmt.Errorf("line %d: the first cell must hold exactly one `pattern`: %q", n, cells[0])
		}
		pat := pats[0]
		if !patternRE.MatchString(pat) {
			return rs, fmt.Errorf("line %d: %q is not a package pattern", n, pat)
		}
		if prev, dup := seen[table+" "+pat]; dup {
			return rs, fmt.Errorf("line %d: %s is listed again (first on line %d)", n, pat, prev)
		}
		seen[table+" "+pat] = n
		switch table {
		case ruleHeader:
			r := rule{pattern: pat, line: n}
			cell := cells[1]
			allowText, exceptText, _ := strings.Cut(cell, " except ")
			r.allow, r.except = tokens(allowText), tokens(exceptText)
			if len(r.allow) == 0 && !strings.Contains(strings.ToLower(cell), nothing) {
				return rs, fmt.Errorf("line %d: %s: the second cell lists no `pattern` and does not say %q", n, pat, nothing)
			}
			if len(r.allow) > 0 && strings.Contains(strings.ToLower(cell), nothing) {
				return rs, fmt.Errorf("line %d: %s: the second cell both lists patterns and says %q", n, pat, nothing)
			}
			for _, p := range slices.Concat(r.allow, r.except) {
				if !patternRE.MatchString(p) {
					return rs, fmt.Errorf("line %d: %s: %q is not a package pattern", n, pat, p)
				}
			}
			rs.rows = append(rs.rows, r)
		case helperHeader:
			if strings.HasSuffix(pat, "/*") {
				return rs, fmt.Errorf("line %d: name each test helper, not %s", n, pat)
			}
			extra := tokens(cells[1])
			for _, p := range extra {
				if !patternRE.MatchString(p) {
					return rs, fmt.Errorf("line %d: %s: %q is not a package pattern", n, pat, p)
				}
			}
			rs.helpers[pat] = extra
		}
	}
	if err := sc.Err(); err != nil {
		return rs, err
	}
	for _, h := range []string{ruleHeader, helperHeader} {
		if !found[h] {
			return rs, fmt.Errorf("no table whose first header cell is %q", h)
		}
	}
	return rs, nil
}

// splitRow returns the trimmed cells of a markdown table row.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	cells := strings.Split(line, "|")
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}

// tokens returns the `backticked` words of s.
func tokens(s string) []string {
	var out []string
	for _, m := range tokenRE.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// matches reports whether pkg (a path relative to the module) matches
// pattern: the path itself, or "dir/*" for every package below dir.
func matches(pattern, pkg string) bool {
	if dir, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(pkg, dir+"/")
	}
	return pattern == pkg
}

func matchesAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, pkg) })
}

// ruleFor returns the row that governs pkg: the row naming it exactly,
// else the wildcard row with the longest directory.
func (rs rules) ruleFor(pkg string) (rule, bool) {
	var best rule
	found := false
	for _, r := range rs.rows {
		if !matches(r.pattern, pkg) {
			continue
		}
		if r.pattern == pkg {
			return r, true
		}
		if !found || len(r.pattern) > len(best.pattern) {
			best, found = r, true
		}
	}
	return best, found
}

// check returns every way in which pkgs (each module package, relative to
// the module, with its non-test imports of module packages) break rs.
func check(rs rules, pkgs map[string][]string) []string {
	var problems []string
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	slices.Sort(names)

	// Every pattern of the doc must still stand for a package: a stale
	// row would hide a mistake.
	stale := func(where, p string) {
		if !slices.ContainsFunc(names, func(n string) bool { return matches(p, n) }) {
			problems = append(problems, fmt.Sprintf("%s: %s matches no package of the module", where, p))
		}
	}
	for _, r := range rs.rows {
		where := fmt.Sprintf("rule table, line %d", r.line)
		stale(where, r.pattern)
		for _, p := range slices.Concat(r.allow, r.except) {
			stale(where, p)
		}
	}
	for h, extra := range rs.helpers {
		stale("test-helper table", h)
		for _, p := range extra {
			stale("test-helper table, "+h, p)
		}
	}

	for _, pkg := range names {
		if !strings.Contains(rs.text, "`"+pkg+"`") {
			problems = append(problems, fmt.Sprintf("%s is not named (as `%s`) in docs/architecture.md: add it to the package list", pkg, pkg))
		}
		r, ok := rs.ruleFor(pkg)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s matches no row of the rule table: add one (or a pattern that covers it)", pkg))
			continue
		}
		_, pkgIsHelper := rs.helpers[pkg]
		for _, imp := range pkgs[pkg] {
			if !matchesAny(r.allow, imp) || matchesAny(r.except, imp) {
				problems = append(problems, fmt.Sprintf("%s imports %s, which the rule for `%s` (line %d) does not allow", pkg, imp, r.pattern, r.line))
			}
			if extra, impIsHelper := rs.helpers[imp]; impIsHelper && !pkgIsHelper && !matchesAny(extra, pkg) {
				problems = append(problems, fmt.Sprintf("%s imports %s, a test helper, outside its tests", pkg, imp))
			}
		}
	}
	return problems
}

// modulePackages lists the module's packages with their non-test imports
// of module packages, as paths relative to the module; it returns the
// module's root folder too.
func modulePackages(t *testing.T) (root string, pkgs map[string][]string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q, %v: not in a module", gomod, err)
	}
	root = filepath.Dir(gomod)
	data, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	module := ""
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			module = strings.Trim(strings.TrimSpace(rest), `"`)
			break
		}
	}
	if module == "" {
		t.Fatalf("%s: no module line", gomod)
	}
	cmd := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	pkgs = map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, ok := rel(fields[0])
		if !ok {
			t.Fatalf("go list: %s is not in module %s", fields[0], module)
		}
		imps := []string{}
		for _, imp := range fields[1:] {
			if r, ok := rel(imp); ok {
				imps = append(imps, r)
			}
		}
		pkgs[pkg] = imps
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return root, pkgs
}

// TestImportRules checks every module package's imports against the rule
// table of docs/architecture.md, and that the table covers every package.
func TestImportRules(t *testing.T) {
	root, pkgs := modulePackages(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := parseRules(string(doc))
	if err != nil {
		t.Fatalf("docs/architecture.md: %v", err)
	}
	for _, p := range check(rs, pkgs) {
		t.Error(p)
	}
}

// TestCheckFindsViolations runs the check over a made-up module, so that a
// check that stopped finding anything would fail here.
func TestCheckFindsViolations(t *testing.T) {
	const doc = "Packages: `a/leaf`, `a/mid`, `a/store`, `a/store/x`, `a/store/y`, `a/fake`, `f`, `f/one`, `f/two`, `c/tool`.\n" +
		"\n" +
		"| package pattern | may import (module packages) | why |\n" +
		"|---|---|---|\n" +
		"| `a/leaf` | nothing in the module | |\n" +
		"| `a/mid` | `a/leaf`, `a/store` | |\n" +
		"| `a/store` | nothing in the module | |\n" +
		"| `a/store/*` | `a/store` | drivers |\n" +
		"| `a/store/y` | `a/store`, `a/leaf` | an exact row wins |\n" +
		"| `a/fake` | `a/store` | |\n" +
		"| `f/*` | `a/*` except `a/store/*` | |\n" +
		"| `f` | `f/*`, `a/*` | |\n" +
		"\n" +
		"| test helper | also imported, outside tests, by |\n" +
		"|---|---|\n" +
		"| `a/fake` | `c/tool` |\n"
	rs, err := parseRules(doc)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string][]string{
		"a/leaf":    {"a/mid"},              // a leaf importing
		"a/mid":     {"a/leaf", "a/store"},  // fine
		"a/store":   {},                     // fine
		"a/store/x": {"a/store", "a/leaf"},  // the wildcard row refuses a/leaf
		"a/store/y": {"a/store", "a/leaf"},  // its own row allows it
		"a/fake":    {"a/store"},            // fine
		"f/one":     {"f/two", "a/store/x"}, // another function; an excluded package
		"f/two":     {"a/fake"},             // a test helper in production code
		"f":         {"f/one", "a/mid"},     // fine
		"c/tool":    {},                     // no row
		"unnamed":   {},                     // no row, not in the doc
	}
	got := check(rs, pkgs)
	want := []string{
		"a/leaf imports a/mid, which the rule for `a/leaf`",
		"a/store/x imports a/leaf, which the rule for `a/store/*`",
		"f/one imports f/two, which the rule for `f/*`",
		"f/one imports a/store/x, which the rule for `f/*`",
		"f/two imports a/fake, a test helper",
		"c/tool matches no row",
		"unnamed matches no row",
		"unnamed is not named",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("check did not report %q; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("check reported %d problems; want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}

	// A second rule table is refused, and a row whose pattern no longer
	// stands for a package is reported.
	if _, err := parseRules(doc + "\n| package pattern | may import |\n|---|---|\n"); err == nil {
		t.Error("a second rule table was accepted")
	}
	rs.rows = append(rs.rows, rule{pattern: "gone/*", allow: []string{"a/leaf"}, line: 99})
	if p := check(rs, map[string][]string{"a/leaf": {}}); !slices.ContainsFunc(p, func(s string) bool { return strings.Contains(s, "gone/* matches no package") }) {
		t.Errorf("a stale row was not reported: %q", p)
	}
}
