/* azure_retry.c - retry classification, error classes, backoff and
 * Retry-After parsing.
 *
 * Decorrelated jitter (delay = random in [base, 3 x previous], capped)
 * spreads the retries of several uploaders hitting the same throttled
 * account, while the expected delay still grows about like 0.8 s x 2^n.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "azure_retry.h"
#include "azure_sign.h"
#include "child_status.h"

void azure_retry_policy_default(struct azure_retry_policy *p)
{
	p->max_retries = AZURE_RETRY_DEFAULT_MAX;
	p->base_ms = AZURE_RETRY_BASE_MS;
	p->cap_ms = AZURE_RETRY_CAP_MS;
}

bool azure_retry_status(long status)
{
	switch (status) {
	case 408: case 429: case 500: case 502: case 503: case 504:
		return true;
	default:
		return false;
	}
}

bool azure_retry_transport(int curl_code)
{
	switch ((CURLcode)curl_code) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_AGAIN:
		return true;
	default:
		/* Certificate problems, bad URLs, our own callbacks failing:
		 * another attempt would fail the same way. */
		return false;
	}
}

bool azure_never_connected(int curl_code)
{
	switch ((CURLcode)curl_code) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

int azure_retry_budget(int max_retries, int curl_code, bool answered_before)
{
	if (!answered_before && azure_never_connected(curl_code) && max_retries > 1)
		return 1;
	return max_retries;
}

/* Failures that say the settings are wrong: the server's certificate is
 * not trusted (wrong host name in BlobEndpoint, a CA bundle missing), or
 * the URL itself is unusable.  Waiting for the breaker cannot mend them. */
static bool config_failure(CURLcode code)
{
	switch (code) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return true;
	default:
		return false;
	}
}

uint64_t azure_rng_next(uint64_t *state)
{
	/* splitmix64: tiny, and any seed (even 0) gives a good sequence. */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t azure_rng_seed(void)
{
	uint64_t seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
}

long azure_retry_backoff_ms(const struct azure_retry_policy *p, int retry,
			    long prev_ms, uint64_t *rng)
{
	long base = p->base_ms > 0 ? p->base_ms : 1;
	long cap = p->cap_ms >= base ? p->cap_ms : base;
	long hi;

	/* The first retry waits between base and 2 x base (0.8 s x 2^1);
	 * later ones up to three times the previous wait. */
	if (retry <= 0 || prev_ms < base)
		hi = 2 * base;
	else
		hi = prev_ms > cap / 3 ? cap : 3 * prev_ms;
	if (hi > cap)
		hi = cap;
	if (hi <= base)
		return base;
	return base + (long)(azure_rng_next(rng) % (uint64_t)(hi - base + 1));
}

long azure_retry_after_header_ms(const char *value, bool milliseconds, time_t now)
{
	const char *p = value;
	char *end;
	long long n;

	if (value == NULL)
		return -1;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return -1;
	if (isdigit((unsigned char)*p)) {
		errno = 0;
		n = strtoll(p, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		if (errno != 0 || *end != '\0' || n < 0)
			return errno == ERANGE ? AZURE_RETRY_AFTER_MAX_MS : -1;
		if (!milliseconds)
			n = n > AZURE_RETRY_AFTER_MAX_MS / 1000 ? AZURE_RETRY_AFTER_MAX_MS : n * 1000;
		return n > AZURE_RETRY_AFTER_MAX_MS ? AZURE_RETRY_AFTER_MAX_MS : (long)n;
	}
	if (milliseconds)
		return -1;
	time_t when = azure_parse_http_date(p);
	if (when == (time_t)-1)
		return -1;
	if (when <= now)
		return 0;
	if (when - now > AZURE_RETRY_AFTER_MAX_MS / 1000)
		return AZURE_RETRY_AFTER_MAX_MS;
	return (long)(when - now) * 1000;
}

const char *azure_error_class(long status, int curl_code, bool answered_before)
{
	/* A transfer that failed mid-way is about the transfer, whatever
	 * status line came before the failure. */
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		break;
	case CURLE_WRITE_ERROR: case CURLE_READ_ERROR: case CURLE_OUT_OF_MEMORY:
	case CURLE_ABORTED_BY_CALLBACK: case CURLE_FAILED_INIT:
		return ERR_CLASS_LOCAL;
	default:
		if (config_failure((CURLcode)curl_code))
			return ERR_CLASS_CONFIG;
		/* A status line came: something answers there after all. */
		if (azure_never_connected(curl_code) && !answered_before && status == 0)
			return ERR_CLASS_UNREACHABLE;
		return ERR_CLASS_TRANSPORT;
	}
	if (status == 401 || status == 403)
		return ERR_CLASS_AUTH;
	if (status == 404)
		return ERR_CLASS_NOTFOUND;
	if (status >= 400 && status < 500 && !azure_retry_status(status))
		return ERR_CLASS_CLIENT;
	if (status == 0)
		return ERR_CLASS_TRANSPORT;
	return ERR_CLASS_SERVER;
}
