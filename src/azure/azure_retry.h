/* azure_retry.h - when to retry an Azure request, and how long to wait.
 *
 * Retryable: HTTP 408, 429, 500, 502, 503, 504 and transport errors
 * (connect, reset, timeout, DNS).  Everything else is final.  A failure to
 * connect at all (refused, unresolvable, no TLS handshake) before the
 * storage has ever answered the client is most likely a wrong endpoint:
 * the caller retries it once at most and reports it as "unreachable".  The
 * wait is decorrelated jitter on a 0.8 s x 2^n base, capped at 60 s, unless
 * the server asked for a specific delay (Retry-After, x-ms-retry-after-ms,
 * retry-after-ms).  Pure functions: the caller owns clocks and sleeping.
 */
#ifndef MAB_AZURE_RETRY_H
#define MAB_AZURE_RETRY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define AZURE_RETRY_DEFAULT_MAX 5
#define AZURE_RETRY_BASE_MS 800
#define AZURE_RETRY_CAP_MS 60000
/* A server may ask for longer than our cap; we honour up to this. */
#define AZURE_RETRY_AFTER_MAX_MS 300000

struct azure_retry_policy {
	int max_retries;        /* retries after the first attempt */
	long base_ms;
	long cap_ms;
};

void azure_retry_policy_default(struct azure_retry_policy *p);

/* HTTP status worth another attempt. */
bool azure_retry_status(long status);
/* libcurl result (a CURLcode) worth another attempt. */
bool azure_retry_transport(int curl_code);
/* A CURLcode for a failure before any exchange with the server: nothing
 * listens (refused), the host or proxy name does not resolve, or the TLS
 * handshake did not come about. */
bool azure_never_connected(int curl_code);
/* Retries allowed for a failure: max_retries, but at most one for a
 * never-connected failure of a client the storage has never answered (a
 * blip of the resolver or listener is covered; a wrong endpoint fails in
 * seconds instead of after minutes of back-off). */
int azure_retry_budget(int max_retries, int curl_code, bool answered_before);

/* Delay before retry number `retry` (0 = first retry).  prev_ms is the
 * previous delay (0 before the first); rng is caller-held PRNG state.
 * Result is within [base, cap] and at most 3 x max(prev, base). */
long azure_retry_backoff_ms(const struct azure_retry_policy *p, int retry,
			    long prev_ms, uint64_t *rng);

/* Parses a server-requested delay: a Retry-After value (delta seconds or an
 * HTTP date, relative to now) or a *-retry-after-ms value.  -1 when absent
 * or malformed; capped at AZURE_RETRY_AFTER_MAX_MS. */
long azure_retry_after_header_ms(const char *value, bool milliseconds, time_t now);

/* ERR_CLASS_* for a final failure; curl_code is a CURLcode (0 when the
 * server answered with status).  answered_before: an earlier request of the
 * same client got an HTTP answer, so a never-connected failure now is an
 * outage ("transport"), not a wrong endpoint ("unreachable").  Certificate
 * and URL problems are "config": no retry and no waiting can mend them. */
const char *azure_error_class(long status, int curl_code, bool answered_before);

/* A PRNG seed from the kernel, falling back to time and pid. */
uint64_t azure_rng_seed(void);
uint64_t azure_rng_next(uint64_t *state);

#endif
