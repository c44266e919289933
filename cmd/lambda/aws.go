package main

// The cold start on AWS Lambda: settings from the environment, the Azure
// client secret from SSM Parameter Store, Key Vault as the store.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/modelauth/modelauth/functions"
	"github.com/modelauth/modelauth/shared/config"
	"github.com/modelauth/modelauth/shared/secretstore/azurekeyvault"
)

// Settings of the Lambda wiring, beyond the app's (shared/config).
const (
	// SecretParameterSetting names the SSM Parameter Store SecureString
	// that holds the Azure application's client secret.
	SecretParameterSetting = "AZURE_CLIENT_SECRET_PARAMETER"
	// ssmTimeout bounds the read of the client secret, within the cold
	// start's 10 seconds.
	ssmTimeout = 5 * time.Second
)

// errFileStore refuses the embedded file store on Lambda.
var errFileStore = errors.New("KEYVAULT_URL is empty: on AWS Lambda the secret store must be Azure Key Vault; " +
	"the embedded file store is refused, since a Lambda's disk (/tmp) does not outlast its execution environment " +
	"and is not shared between instances, so keys written there would be lost")

// errPlainSecret refuses a client secret in the environment.
var errPlainSecret = errors.New("AZURE_CLIENT_SECRET is set: on AWS Lambda the Azure client secret is never read from " +
	"plain environment text (anyone who can read the function's configuration could read it); put it in an SSM " +
	"Parameter Store SecureString, name it in " + SecretParameterSetting + " and remove AZURE_CLIENT_SECRET")

// newApp wires the function app for AWS Lambda: the settings through
// getenv, JSON logs to stdout (also slog's default logger, which the
// adapters log to), and Key Vault opened with a client-secret credential
// whose secret comes from SSM Parameter Store.
func newApp(ctx context.Context, getenv func(string) string, stdout io.Writer, kind string) (*functions.App, error) {
	lambdaEnv := func(name string) string {
		// The zip's root holds modelauth.json, as the function app's root
		// does on Azure; Lambda names it in LAMBDA_TASK_ROOT.
		if name == "FUNCTIONS_APP_ROOT_PATH" {
			return getenv("LAMBDA_TASK_ROOT")
		}
		return getenv(name)
	}
	s, err := config.LoadSettings(lambdaEnv)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: s.LogLevel}))
	slog.SetDefault(log)

	var problems []error
	if s.KeyVaultURL == "" {
		problems = append(problems, errFileStore)
	}
	if getenv("AZURE_CLIENT_SECRET") != "" {
		problems = append(problems, errPlainSecret)
	}
	tenant, client := strings.TrimSpace(getenv("AZURE_TENANT_ID")), strings.TrimSpace(getenv("AZURE_CLIENT_ID"))
	param := strings.TrimSpace(getenv(SecretParameterSetting))
	for _, v := range []struct{ name, value string }{
		{"AZURE_TENANT_ID", tenant}, {"AZURE_CLIENT_ID", client}, {SecretParameterSetting, param},
	} {
		if v.value == "" {
			problems = append(problems, fmt.Errorf("%s is empty: the Key Vault credential on AWS Lambda needs AZURE_TENANT_ID, AZURE_CLIENT_ID and %s", v.name, SecretParameterSetting))
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}

	secret, err := clientSecret(ctx, getenv, param)
	if err != nil {
		return nil, err
	}
	cred, err := newCredential(tenant, client, secret, s.AuthorityHost)
	if err != nil {
		return nil, err
	}
	store, err := azurekeyvault.Open(s.KeyVaultURL, cred, nil)
	if err != nil {
		return nil, err
	}
	// The same credential reaches Azure Resource Manager (Azure ML
	// endpoints and their tokens): Lambda has no managed identity.
	app, err := functions.NewAppWithStoreCredential(ctx, s, store, cred, log)
	if err != nil {
		return nil, err
	}
	log.Info("lambda_started", "handler", kind, "pid", os.Getpid(), "services", len(app.Config.Services),
		"store", "keyvault", "secret_parameter", param)
	return app, nil
}

// clientSecret reads the SecureString parameter name from SSM Parameter
// Store, decrypted, with the function's AWS credentials. The AWS settings
// come through getenv, as the SDK reads them from the environment:
// AWS_REGION (or AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (else the SDK's default
// credential chain), AWS_ENDPOINT_URL_SSM or AWS_ENDPOINT_URL. Its errors
// name the parameter, never its value.
func clientSecret(ctx context.Context, getenv func(string) string, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ssmTimeout)
	defer cancel()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("reading the Azure client secret from the SSM parameter %s (%s): %s", name, SecretParameterSetting, fmt.Sprintf(format, args...))
	}
	var opts []func(*awsconfig.LoadOptions) error
	if region := cmp.Or(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")); region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	if id, key := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"); id != "" && key != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, key, getenv("AWS_SESSION_TOKEN"))))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return "", fail("the AWS configuration: %v", err)
	}
	endpoint := cmp.Or(getenv("AWS_ENDPOINT_URL_SSM"), getenv("AWS_ENDPOINT_URL"))
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return "", fail("the SSM endpoint (AWS_ENDPOINT_URL_SSM or AWS_ENDPOINT_URL) is not an http(s) URL")
		}
	}
	client := ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	out, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", fail("%v", err)
	}
	p := out.Parameter
	switch {
	case p == nil || p.Value == nil || *p.Value == "":
		return "", fail("the parameter is empty")
	case p.Type != ssmtypes.ParameterTypeSecureString:
		return "", fail("the parameter is a %s; it must be a SecureString, so that the secret is stored encrypted", p.Type)
	}
	return *p.Value, nil
}

// newCredential returns the client-secret credential of the application
// clientID in tenantID. authorityHost is AZURE_AUTHORITY_HOST (empty: the
// public cloud's); for a host other than Entra's own, instance discovery is
// switched off, as azidentity documents for such clouds.
func newCredential(tenantID, clientID, secret, authorityHost string) (azcore.TokenCredential, error) {
	opts := &azidentity.ClientSecretCredentialOptions{}
	noDiscovery, err := azurekeyvault.NoInstanceDiscovery(authorityHost)
	if err != nil {
		return nil, err
	}
	if authorityHost != "" {
		opts.ClientOptions.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: authorityHost}
		opts.DisableInstanceDiscovery = noDiscovery
	}
	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, secret, opts)
	if err != nil {
		// azidentity's errors name the tenant or client, not the secret.
		return nil, fmt.Errorf("the Azure client-secret credential: %w", err)
	}
	return cred, nil
}
