/* azure_token.h - Microsoft Entra ID access tokens for Blob Storage.
 *
 * One token source per process: it fetches a token for
 * https://storage.azure.com/ from the configured place (the VM's IMDS,
 * App Service's or Arc's identity endpoint, or Entra ID's v2.0 token
 * endpoint with a client secret, a certificate-signed assertion, or a
 * federated token), keeps it, and fetches the next one before this one
 * runs out: when less than 5 minutes or half its lifetime is left,
 * whichever comes first.  A storage request refused for its token makes
 * the caller invalidate it; the next get fetches anew.
 *
 * Failures: a token endpoint that is down, busy or throttling (IMDS 404,
 * 410, 429, 5xx, timeouts) is retried with back-off like a storage outage
 * and then reported as one (ERR_CLASS_SERVER / TRANSPORT: the breaker
 * counts it); a refusal (invalid_client, unknown identity) is final
 * (ERR_CLASS_AUTH), with Entra's error code and description.  No message
 * holds the secret, the assertion or a token.
 */
#ifndef MAB_AZURE_TOKEN_H
#define MAB_AZURE_TOKEN_H

#include <stdbool.h>
#include <time.h>

#include "azure_request.h"

enum azure_token_kind {
	AZURE_TOKEN_MANAGED_IDENTITY,
	AZURE_TOKEN_CLIENT_SECRET,
	AZURE_TOKEN_CLIENT_CERTIFICATE,
	AZURE_TOKEN_FEDERATED,
};

struct azure_token_settings {
	enum azure_token_kind kind;
	const char *client_id;          /* "" for a system-assigned identity */
	const char *tenant_id;
	const char *authority_host;     /* https://login.microsoftonline.com */
	const char *identity_endpoint;  /* IMDS, unless the environment names another */
	const char *federated_token_file;
	const char *ca_file;            /* "" : the system's CAs */
	const char *credential;         /* the secret, or the PEM (cert + key) */
	int max_retries;
};

struct azure_token_source;

/* NULL with a message in err (a bad certificate or key, out of memory). */
struct azure_token_source *azure_token_source_new(const struct azure_token_settings *s,
						  char *err, size_t errlen);
/* The current token, fetched when there is none or it is due for renewal;
 * valid until the next call.  NULL with err filled. */
const char *azure_token_get(struct azure_token_source *ts, struct azure_error *err);
/* Storage refused the token: the next get fetches a new one. */
void azure_token_invalidate(struct azure_token_source *ts);
/* Where tokens come from, for messages: "IMDS", "Entra ID (tenant ...)". */
const char *azure_token_origin(const struct azure_token_source *ts);
/* Token requests made so far (tests and -t's report). */
int azure_token_requests(const struct azure_token_source *ts);
void azure_token_source_free(struct azure_token_source *ts);

/* When a token obtained at `now` that lives `lifetime` seconds is renewed. */
time_t azure_token_renew_at(time_t now, long lifetime);

#endif
