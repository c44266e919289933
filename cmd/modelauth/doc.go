// Command modelauth calls a modelauth function app (deployed, or the local
// host of `make run`) from the command line: it reads, regenerates and
// rotates a key-mode service's keys, gets and watches a token-mode
// service's tokens, and checks a key or a token as a gateway would. It is a
// thin layer over the client package (shared/client).
//
//	modelauth [global flags] <command> [flags] <service>
//
//	keys get <service> [--active]           the service's keys, the active one marked
//	keys regen <service> --type Primary|Secondary [--value V]
//	                                        replace one key (the old value stops working)
//	keys rotate <service>                   rotate the keys now (takes 2 x KEY_CACHE_TTL)
//	token get <service>                     a new token for a token-mode service
//	token watch <service>                   a token, then each refresh, until Ctrl-C
//	validate <service> [--credential V]     check a key or a token for the service
//	help                                    this reference
//
// Flags may come before or after the command and the service.
//
// # Configuration
//
// Global flags, each with an environment variable; the flag wins:
//
//	--url URL        MODELAUTH_URL   the app's URL with its route prefix
//	                                 (default http://localhost:7071/api)
//	--key VALUE      MODELAUTH_KEY   the caller's credential for keys and token:
//	                                 the administrator key (`make -s admin-key`)
//	                                 or a Microsoft Entra token with an app role
//	--output FORMAT                  text (default) or json
//	--timeout D                      the most one call may take (default 60s)
//
// validate takes the credential to check from --credential or
// MODELAUTH_CREDENTIAL (not from --key, which is the caller's). Prefer the
// environment variables for secrets: command-line arguments are visible to
// other users of the machine.
//
// # Output
//
// Results go to stdout, and only results: keys and tokens are written to
// stdout and never to stderr. stderr carries errors and, for tokens, a
// line describing the token (its expiry and refreshAfter), never the token
// itself.
//
// With --output text (the default):
//   - keys get, keys regen: one line per key, "Primary  <key>  (active)",
//     "Secondary  <key>"; with --active, keys get prints the active key alone,
//     so KEY=$(modelauth keys get demo --active) works;
//   - keys rotate: "rotation: <outcome> [<keyType> <id>]", then the keys;
//   - token get: the raw token alone on stdout, so
//     TOKEN=$(modelauth token get token-demo) works; its expiry and
//     refreshAfter on stderr;
//   - token watch: each token on a line of its own on stdout (a pipe can
//     read them one by one), and the line describing it on stderr;
//   - validate: "valid: service=... subject=... authType=... [keyType=...]".
//
// With --output json, stdout holds the app's JSON: {"primaryKey",
// "secondaryKey","activeKeyType"} for keys (plus "rotation" for rotate),
// {"accessToken","tokenType","expiryOn","refreshAfter"} (Unix seconds) for a
// token, one object per line for token watch, and {"service","subject",
// "authType","keyType"} for validate. Errors stay one line of text on
// stderr.
//
// token watch gets a token and prints it, then prints each new one: the
// tokens come through the client package's RefreshingSource, which gets
// the next token at the current one's refreshAfter (at most one fetch a
// second) while the current one is still served. When a refresh fails it
// says so on stderr and tries again 30 s later; the first fetch failing
// ends the command. Ctrl-C (SIGINT) or SIGTERM stops it with exit status 0.
//
// # Errors
//
// Every error is one line on stderr, naming the command and the service:
//
//	modelauth: keys get iris: 403 Forbidden: the caller lacks the role Keys.Read.iris or Keys.Read.All
//
// Exit status:
//
//	0  success (validate: the credential is valid)
//	1  the app refused or failed the call: any 4xx or 5xx answer (validate:
//	   the credential is refused), or an answer that cannot be read
//	2  usage: unknown command, missing or extra argument, bad flag value
//	3  no answer: the app cannot be reached (connection, TLS, timeout), or
//	   the command was interrupted
package main
