package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Dummy AWS settings of the Lambda environment under test: the SDK signs
// with them, and the SSM test endpoint checks the signature's scope.
const (
	testAccessKeyID     = "AKIAMODELAUTHTEST000"
	testSecretAccessKey = "modelauth-test-secret-access-key"
	testRegion          = "eu-west-1"
	testParameter       = "/modelauth/azure-client-secret"
)

// ssmServer is an SSM Parameter Store endpoint for tests: it speaks the
// AWS JSON 1.1 protocol of AmazonSSM.GetParameter, as aws-sdk-go-v2 calls
// it (POST /, X-Amz-Target, a SigV4 Authorization header), and answers from
// params.
type ssmServer struct {
	URL string

	mu       sync.Mutex
	params   map[string]ssmParam
	calls    int
	problems []string
}

type ssmParam struct {
	Type, Value string
	// Error, if set, is the __type of the error answered instead.
	Error string
}

// sigV4 is the Authorization header aws-sdk-go-v2 sends, with its scope.
var sigV4 = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=` + testAccessKeyID + `/\d{8}/` + testRegion +
	`/ssm/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$`)

func newSSMServer(t *testing.T, params map[string]ssmParam) *ssmServer {
	t.Helper()
	s := &ssmServer{params: params}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	t.Cleanup(func() {
		for _, p := range s.Problems() {
			t.Errorf("SSM test endpoint: %s", p)
		}
	})
	return s
}

// Calls returns the number of GetParameter requests answered.
func (s *ssmServer) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Problems returns what was wrong with the requests received.
func (s *ssmServer) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

func (s *ssmServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name           *string
		WithDecryption *bool
	}
	var problems []string
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		problems = append(problems, fmt.Sprintf("%s %s; want POST /", r.Method, r.URL.Path))
	}
	if got := r.Header.Get("X-Amz-Target"); got != "AmazonSSM.GetParameter" {
		problems = append(problems, fmt.Sprintf("X-Amz-Target %q; want AmazonSSM.GetParameter", got))
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
		problems = append(problems, fmt.Sprintf("Content-Type %q; want application/x-amz-json-1.1", got))
	}
	if got := r.Header.Get("Authorization"); !sigV4.MatchString(got) {
		problems = append(problems, fmt.Sprintf("Authorization %q is not a SigV4 signature for ssm in %s", got, testRegion))
	}
	if r.Header.Get("X-Amz-Date") == "" {
		problems = append(problems, "no X-Amz-Date")
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		problems = append(problems, fmt.Sprintf("body: %v", err))
	}
	if req.WithDecryption == nil || !*req.WithDecryption {
		problems = append(problems, "WithDecryption is not true")
	}
	s.mu.Lock()
	s.calls++
	s.problems = append(s.problems, problems...)
	p, found := ssmParam{}, false
	if req.Name != nil {
		p, found = s.params[*req.Name]
	}
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", "00000000-0000-4000-8000-000000000000")
	switch {
	case len(problems) > 0:
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": "ValidationException", "message": strings.Join(problems, "; ")})
	case !found:
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": "ParameterNotFound"})
	case p.Error != "":
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": p.Error, "Message": "refused by the test endpoint"})
	default:
		json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
			"Name": *req.Name, "Type": p.Type, "Value": p.Value, "Version": 1,
			"ARN":      "arn:aws:ssm:" + testRegion + ":123456789012:parameter" + *req.Name,
			"DataType": "text", "LastModifiedDate": 1.7e9,
		}})
	}
}
