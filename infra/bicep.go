package infra

import (
	"fmt"
	"regexp"
	"strings"
)

// BicepFile is what a test can know of a Bicep file without the Bicep
// compiler: its parameters and resources, with each resource's body parsed
// into objects, arrays and expressions (kept as written).
type BicepFile struct {
	Params    map[string]BicepParam
	Resources []BicepResource
}

// BicepParam is a param declaration.
type BicepParam struct {
	Type string
	// Default is the default's expression as written; "" when it has none.
	Default string
	// Decorators are the lines starting with @ above it, as written.
	Decorators []string
}

// BicepResource is a resource declaration.
type BicepResource struct {
	Symbol     string
	Type       string // such as Microsoft.Web/sites
	APIVersion string
	Existing   bool
	// Condition is the expression of `if (...)`; "" when there is none.
	Condition string
	Body      BicepObject
}

// BicepObject is an object literal: each member's value is a BicepObject,
// a []any of values, or a string holding the expression as written
// (a string literal keeps its quotes).
type BicepObject map[string]any

// Resource returns the resource declared with symbol.
func (f *BicepFile) Resource(symbol string) (BicepResource, bool) {
	for _, r := range f.Resources {
		if r.Symbol == symbol {
			return r, true
		}
	}
	return BicepResource{}, false
}

// OfType returns the resources of type typ, in order.
func (f *BicepFile) OfType(typ string) []BicepResource {
	var out []BicepResource
	for _, r := range f.Resources {
		if strings.EqualFold(r.Type, typ) {
			out = append(out, r)
		}
	}
	return out
}

// Get returns the value at a dotted path of members, such as
// "properties.siteConfig.minTlsVersion", or nil.
func (o BicepObject) Get(path string) any {
	var v any = o
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(BicepObject)
		if !ok {
			return nil
		}
		if v, ok = obj[k]; !ok {
			return nil
		}
	}
	return v
}

// String returns the expression at path, or "" when it is not one.
func (o BicepObject) String(path string) string {
	s, _ := o.Get(path).(string)
	return s
}

var (
	paramLine    = regexp.MustCompile(`^param\s+(\w+)\s+(\w+)(?:\s*=\s*(.+))?$`)
	plainName    = regexp.MustCompile(`^[\w.-]+$`)
	resourceLine = regexp.MustCompile(`^resource\s+(\w+)\s+'([^'@]+)@([^']+)'\s+(existing\s+)?=\s+(?:if\s*\((.*)\)\s*)?\{$`)
)

// ParseBicep reads the top-level params and resources of src. Nested
// resources (declared inside another's body) are kept in the body as
// expressions, not listed.
func ParseBicep(src string) (*BicepFile, error) {
	f := &BicepFile{Params: map[string]BicepParam{}}
	lines := strings.Split(src, "\n")
	offsets := make([]int, len(lines)) // where each line starts in src
	for i := 1; i < len(lines); i++ {
		offsets[i] = offsets[i-1] + len(lines[i-1]) + 1
	}
	var decorators []string
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(line, "@"):
			decorators = append(decorators, line)
			continue
		case paramLine.MatchString(line):
			m := paramLine.FindStringSubmatch(line)
			f.Params[m[1]] = BicepParam{Type: m[2], Default: strings.TrimSpace(m[3]), Decorators: decorators}
		case strings.HasPrefix(line, "resource "):
			m := resourceLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: a resource declaration this reader does not know: %s", i+1, line)
			}
			// The body runs from this line's { to its matching }.
			start := offsets[i] + strings.LastIndex(lines[i], "{")
			p := &bicepParser{src: src, pos: start}
			body, err := p.object()
			if err != nil {
				return nil, fmt.Errorf("resource %s: %w", m[1], err)
			}
			f.Resources = append(f.Resources, BicepResource{
				Symbol: m[1], Type: m[2], APIVersion: m[3], Existing: m[4] != "",
				Condition: strings.TrimSpace(m[5]), Body: body,
			})
			// Go on after the body.
			i += strings.Count(src[start:p.pos], "\n")
		}
		decorators = nil
	}
	return f, nil
}

// bicepParser reads object and array literals from src.
type bicepParser struct {
	src string
	pos int
}

func (p *bicepParser) errorf(format string, args ...any) error {
	line := strings.Count(p.src[:p.pos], "\n") + 1
	return fmt.Errorf("line %d: %s", line, fmt.Sprintf(format, args...))
}

// skip passes over white space (newlines too when nl) and comments.
func (p *bicepParser) skip(nl bool) {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || (nl && (c == '\n' || c == ',')):
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "//"):
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case strings.HasPrefix(p.src[p.pos:], "/*"):
			end := strings.Index(p.src[p.pos+2:], "*/")
			if end < 0 {
				p.pos = len(p.src)
				return
			}
			p.pos += end + 4
		default:
			return
		}
	}
}

// object reads an object literal starting at its {.
func (p *bicepParser) object() (BicepObject, error) {
	if p.pos >= len(p.src) || p.src[p.pos] != '{' {
		return nil, p.errorf("want {")
	}
	p.pos++
	obj := BicepObject{}
	for {
		p.skip(true)
		if p.pos >= len(p.src) {
			return nil, p.errorf("an object without its }")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			return obj, nil
		}
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		p.skip(false)
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			// A nested resource declaration or other statement: keep it whole.
			expr, err := p.expression()
			if err != nil {
				return nil, err
			}
			obj[key] = expr
			continue
		}
		p.pos++
		p.skip(false)
		v, err := p.value()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if _, dup := obj[key]; dup {
			return nil, p.errorf("%s appears twice", key)
		}
		obj[key] = v
	}
}

// key reads a member name: an identifier or a string literal, which
// keeps its quotes unless it is a plain name.
func (p *bicepParser) key() (string, error) {
	start := p.pos
	if p.src[p.pos] == '\'' {
		if err := p.str(); err != nil {
			return "", err
		}
		k := p.src[start:p.pos]
		if inner := k[1 : len(k)-1]; plainName.MatchString(inner) {
			return inner, nil
		}
		return k, nil
	}
	for p.pos < len(p.src) && (isIdent(p.src[p.pos])) {
		p.pos++
	}
	if p.pos == start {
		return "", p.errorf("want a member name, got %q", p.src[p.pos:min(p.pos+20, len(p.src))])
	}
	return p.src[start:p.pos], nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// value reads an object, an array, or an expression up to the end of its
// line (or the , or closing bracket that ends it).
func (p *bicepParser) value() (any, error) {
	if p.pos >= len(p.src) {
		return nil, p.errorf("a value is missing at the end")
	}
	switch {
	case p.src[p.pos] == '{':
		return p.object()
	case p.src[p.pos] == '[' && !strings.HasPrefix(strings.TrimLeft(p.src[p.pos+1:], " \n\t"), "for "):
		return p.array()
	case strings.HasPrefix(p.src[p.pos:], "union({"):
		// union({...}, more): the literal object, which is what the
		// template states; the rest is merged in at deployment.
		p.pos += len("union(")
		obj, err := p.object()
		if err != nil {
			return nil, err
		}
		// The rest of the arguments, to the closing parenthesis.
		for depth := 1; depth > 0; p.pos++ {
			if p.pos >= len(p.src) {
				return nil, p.errorf("union( without its )")
			}
			switch p.src[p.pos] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		return obj, nil
	}
	return p.expression()
}

// array reads an array literal starting at its [.
func (p *bicepParser) array() ([]any, error) {
	p.pos++
	var out []any
	for {
		p.skip(true)
		if p.pos >= len(p.src) {
			return nil, p.errorf("an array without its ]")
		}
		if p.src[p.pos] == ']' {
			p.pos++
			return out, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// expression reads up to a newline, comma or closing bracket at depth 0.
func (p *bicepParser) expression() (string, error) {
	start, depth := p.pos, 0
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\'':
			if err := p.str(); err != nil {
				return "", err
			}
			continue
		case strings.HasPrefix(p.src[p.pos:], "//"):
			if depth == 0 {
				// A trailing comment ends the expression.
				expr := strings.TrimSpace(p.src[start:p.pos])
				p.skip(false)
				return expr, nil
			}
			p.skip(false)
			continue
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			if depth == 0 {
				if p.pos == start {
					return "", p.errorf("unexpected %c", c)
				}
				return strings.TrimSpace(p.src[start:p.pos]), nil
			}
			depth--
		case (c == '\n' || c == ',') && depth == 0:
			return strings.TrimSpace(p.src[start:p.pos]), nil
		}
		p.pos++
	}
	return "", p.errorf("an expression that does not end")
}

// str passes over a string literal: '...' with \ escapes, or ”'...”'.
func (p *bicepParser) str() error {
	if strings.HasPrefix(p.src[p.pos:], "'''") {
		end := strings.Index(p.src[p.pos+3:], "'''")
		if end < 0 {
			return p.errorf("a ''' string that does not end")
		}
		p.pos += end + 6
		return nil
	}
	for i := p.pos + 1; i < len(p.src); i++ {
		switch p.src[i] {
		case '\\':
			i++
		case '\'':
			p.pos = i + 1
			return nil
		case '\n':
			return p.errorf("a string that does not end on its line")
		}
	}
	return p.errorf("a string that does not end")
}
