package lambdaadapter

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/modelauth/modelauth/shared/apierror"
	"github.com/modelauth/modelauth/shared/authn"
	"github.com/modelauth/modelauth/shared/bearer"
	"github.com/modelauth/modelauth/shared/config"
)

// ErrUnauthorized is the error a REST authorizer returns for a request
// without Bearer credentials: API Gateway answers 401 for exactly the
// message "Unauthorized".
var ErrUnauthorized = errors.New("Unauthorized")

// Context keys of an allowing authorizer response, as integrations read
// them ($context.authorizer.service on HTTP APIs and REST APIs alike).
const (
	ContextService  = "service"
	ContextSubject  = "subject"
	ContextAuthType = "authType"
	ContextKeyType  = "keyType"
)

// PolicyVersion is the IAM policy language version of the REST
// authorizers' policies.
const PolicyVersion = "2012-10-17"

// DeniedPrincipal is the principalId of a Deny policy: API Gateway
// requires one, and a refused caller has no subject.
const DeniedPrincipal = "denied"

// HTTPAuthorizer returns an API Gateway HTTP API Lambda authorizer for
// payload format 2.0 with simple responses. It allows a request whose
// Authorization header s accepts for the service of its route, with the
// identity in the context, and denies every other request with
// IsAuthorized false and a nil error (see the package documentation).
func HTTPAuthorizer(s *authn.Services) func(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	return func(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
		service, ok := httpAPIService(req.PathParameters["service"], req.RawPath, req.RequestContext.Stage)
		if !ok {
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, nil
		}
		id, f := authenticate(ctx, s, service, authn.FromHeader(header(req.Headers, "Authorization")))
		if f != nil {
			logDenied(ctx, "http", service, f)
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, nil
		}
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: identityContext(id)}, nil
	}
}

// RESTTokenAuthorizer returns a REST API Lambda authorizer of the TOKEN
// type, whose token source is the Authorization header. The service comes
// from the methodArn. It answers an Allow policy scoped to the service
// (see [AllowResource]) for an accepted credential, [ErrUnauthorized] for
// a missing one and a Deny policy for the methodArn otherwise.
func RESTTokenAuthorizer(s *authn.Services) func(ctx context.Context, req events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	return func(ctx context.Context, req events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
		arn, ok := parseMethodARN(req.MethodArn)
		// An empty token is a missing credential, as an empty header is.
		cred := authn.FromHeader([]string{req.AuthorizationToken})
		return restAuthorize(ctx, s, "rest_token", req.MethodArn, arn, ok, "", cred)
	}
}

// RESTRequestAuthorizer returns a REST API Lambda authorizer of the
// REQUEST type. The service is the one in the methodArn, which the Allow
// policy must cover; a "service" path parameter, when present, must name
// the same service. The credential is the Authorization header, looked up
// without regard to case; more than one, in the headers or the multi-value
// headers, denies. It answers as [RESTTokenAuthorizer] does.
func RESTRequestAuthorizer(s *authn.Services) func(ctx context.Context, req events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	return func(ctx context.Context, req events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
		arn, ok := parseMethodARN(req.MethodArn)
		// The value is the headers' one; the multi-value headers tell
		// whether the header was repeated (API Gateway sends both).
		auth := header(req.Headers, "Authorization")
		if m := multiHeader(req.MultiValueHeaders, "Authorization"); len(m) > 1 && len(m) > len(auth) {
			auth = m
		}
		return restAuthorize(ctx, s, "rest_request", req.MethodArn, arn, ok, req.PathParameters["service"], authn.FromHeader(auth))
	}
}

// restAuthorize is the REST authorizers' decision: param is the service
// path parameter ("" when none) and cred the request's credential.
func restAuthorize(ctx context.Context, s *authn.Services, kind, methodArn string, arn methodARN, arnOK bool, param string, cred authn.Credential) (events.APIGatewayCustomAuthorizerResponse, error) {
	deny := denyPolicy(methodArn)
	if !arnOK {
		return deny, nil
	}
	// The Allow policy covers the methodArn only if its path is under
	// /services/<service>/: the methodArn must name the service.
	service := arn.service
	if service == "" || param != "" && param != service {
		return deny, nil
	}
	id, f := authenticate(ctx, s, service, cred)
	if f != nil {
		if f.Err.Code == apierror.Unauthorized && errors.Is(cred.Err(), bearer.ErrMissing) {
			return events.APIGatewayCustomAuthorizerResponse{}, ErrUnauthorized
		}
		logDenied(ctx, kind, service, f)
		return deny, nil
	}
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: id.Subject,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: PolicyVersion,
			Statement: []events.IAMPolicyStatement{{
				Action:   []string{"execute-api:Invoke"},
				Effect:   "Allow",
				Resource: []string{arn.allowResource(service)},
			}},
		},
		Context: identityContext(id),
	}, nil
}

// authenticate asks s who presents cred, for service. The identity is
// checked to be for service.
func authenticate(ctx context.Context, s *authn.Services, service string, cred authn.Credential) (authn.Identity, *authn.Failure) {
	id, f := s.Authenticate(ctx, service, cred)
	if f == nil && id.Service != service {
		return authn.Identity{}, &authn.Failure{Err: apierror.New(apierror.Internal, "the identity is for another service")}
	}
	return id, f
}

// denyPolicy denies the one method the request is for.
func denyPolicy(methodArn string) events.APIGatewayCustomAuthorizerResponse {
	resource := methodArn
	if resource == "" {
		resource = "*"
	}
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: DeniedPrincipal,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: PolicyVersion,
			Statement: []events.IAMPolicyStatement{{
				Action:   []string{"execute-api:Invoke"},
				Effect:   "Deny",
				Resource: []string{resource},
			}},
		},
	}
}

// identityContext is the authorizer context of an identity. API Gateway
// accepts only strings, numbers and booleans as values.
func identityContext(id authn.Identity) map[string]any {
	// Every member, as validate sends every header: a mapping of a
	// missing one would send the client's or nothing.
	return map[string]any{ContextService: id.Service, ContextSubject: id.Subject, ContextAuthType: id.AuthType,
		ContextKeyType: cmp.Or(id.KeyType, authn.NotApplicable)}
}

// logDenied logs a refusal as apierror.Write logs a failed request: only
// refusals with a cause, and every 5xx, at warn and error level.
func logDenied(ctx context.Context, kind, service string, f *authn.Failure) {
	if level, ok := f.Err.LogLevel(); ok {
		slog.Default().Log(ctx, level, "authorizer_denied",
			append([]any{"authorizer", kind, "service", service}, f.Err.LogAttrs()...)...)
	}
}

// header returns the values of the header name in h: one for each key of
// h that names it, compared without regard to case.
func header(h map[string]string, name string) []string {
	var vals []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			vals = append(vals, v)
		}
	}
	return vals
}

// multiHeader is [header] for multi-value headers: every value of every
// key that names it.
func multiHeader(h map[string][]string, name string) []string {
	var vals []string
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			vals = append(vals, vs...)
		}
	}
	return vals
}

// httpAPIService returns the service of an HTTP API request: the path
// parameter, else the one named by the path. A path that names another
// service than the parameter, or that could be read two ways, has none.
func httpAPIService(param, rawPath, stage string) (string, bool) {
	if ambiguousPath(rawPath) {
		return "", false
	}
	fromPath, _ := servicePath(stripStage(rawPath, stage))
	switch {
	case param == "":
		return fromPath, fromPath != ""
	case !config.ServiceNameRE.MatchString(param):
		return "", false
	case fromPath != "" && fromPath != param:
		return "", false
	}
	return param, true
}

// stripStage removes the /<stage> prefix that an HTTP API puts in rawPath
// for a stage other than $default.
func stripStage(p, stage string) string {
	if stage == "" || stage == "$default" {
		return p
	}
	if rest, ok := strings.CutPrefix(p, "/"+stage); ok && (rest == "" || rest[0] == '/') {
		return rest
	}
	return p
}

// servicePath returns the service of a path /services/<service>[/...]
// or /api/services/<service>[/...], and the path from /services on.
func servicePath(p string) (string, string) {
	if rest, ok := strings.CutPrefix(p, "/api"); ok && strings.HasPrefix(rest, "/services/") {
		p = rest
	}
	rest, ok := strings.CutPrefix(p, "/services/")
	if !ok {
		return "", ""
	}
	service, _, _ := strings.Cut(rest, "/")
	if !config.ServiceNameRE.MatchString(service) {
		return "", ""
	}
	return service, p
}

// ambiguousPath reports whether a path could be read two ways: by a
// server that cleans dot segments or decodes %2F before routing, and by
// this authorizer, which does neither.
func ambiguousPath(p string) bool {
	if strings.ContainsRune(p, '\\') {
		return true
	}
	lower := strings.ToLower(p)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%2e") || strings.Contains(lower, "%5c") {
		return true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// methodARN is a parsed REST API methodArn:
// arn:<partition>:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>.
type methodARN struct {
	prefix  string // arn:<partition>:execute-api:<region>:<account>:<api>/<stage>
	service string // from /services/<service>/..., "" when the path has none
	// (nothing below the service is none: the Allow would not cover it)
}

func parseMethodARN(s string) (methodARN, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "execute-api" ||
		parts[3] == "" || parts[4] == "" {
		return methodARN{}, false
	}
	// <api>/<stage>/<METHOD>/<path...>
	segs := strings.SplitN(parts[5], "/", 4)
	if len(segs) < 3 || segs[0] == "" || segs[1] == "" || segs[2] == "" {
		return methodARN{}, false
	}
	a := methodARN{prefix: strings.Join(parts[:5], ":") + ":" + segs[0] + "/" + segs[1]}
	if len(segs) == 4 {
		p := "/" + segs[3]
		if ambiguousPath(p) {
			return methodARN{}, false
		}
		if rest, ok := strings.CutPrefix(p, "/services/"); ok {
			service, _, below := strings.Cut(rest, "/")
			if below && config.ServiceNameRE.MatchString(service) {
				a.service = service
			}
		}
	}
	return a, true
}

// allowResource is the one resource an Allow policy grants.
func (a methodARN) allowResource(service string) string {
	return a.prefix + "/*/services/" + service + "/*"
}

// AllowResource returns the resource that an allowing REST authorizer
// grants for service, given the request's methodArn:
// arn:...:<api>/<stage>/*/services/<service>/*. It returns "" for a
// methodArn it cannot parse.
func AllowResource(methodArn, service string) string {
	a, ok := parseMethodARN(methodArn)
	if !ok {
		return ""
	}
	return a.allowResource(service)
}
