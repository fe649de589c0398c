/* azure_sign.h - Azure Shared Key signing and the encodings it needs.
 *
 * Owns the StringToSign (azure-blob.md "Shared Key"), HMAC-SHA256 over it,
 * and the small codecs every Azure request uses: base64 (strict decoding:
 * a mistyped key must be an error, not a different key), percent-encoding
 * of paths and query values, and the RFC 1123 date.  Pure functions, no I/O.
 */
#ifndef MAB_AZURE_SIGN_H
#define MAB_AZURE_SIGN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* base64 of 32 bytes (HMAC-SHA256) plus NUL. */
#define AZURE_SIG_B64_SIZE 45
/* base64 of 16 bytes (MD5) plus NUL. */
#define AZURE_MD5_B64_SIZE 25
/* "Mon, 02 Jan 2023 03:04:05 GMT" plus NUL. */
#define AZURE_DATE_SIZE 30

struct azure_header {
	const char *name;
	const char *value;
};

/* Builds the Shared Key StringToSign for one request.  headers are every
 * header that will be sent except Content-Length (given separately, 0 =
 * empty); the standard ones are picked by name, x-ms-* ones are lowercased,
 * sorted and appended.  path is the URI path exactly as sent (percent-
 * encoded, starting with '/'); query is the query as sent without '?'
 * (NULL or "" for none).  Returns a malloc'd string, NULL on ENOMEM/EINVAL. */
char *azure_string_to_sign(const char *verb, uint64_t content_length,
			   const struct azure_header *headers, size_t n_headers,
			   const char *account, const char *path, const char *query);

/* base64(HMAC-SHA256(key, msg)) into out.  0, or -1. */
int azure_hmac_b64(const unsigned char *key, size_t key_len, const char *msg,
		   char out[AZURE_SIG_B64_SIZE]);

/* Standard base64 with padding.  out must hold 4*ceil(len/3)+1 bytes. */
void azure_b64_encode(const void *data, size_t len, char *out);
/* Strict decoding: only the standard alphabet, correct padding, length a
 * multiple of 4.  Returns a malloc'd buffer and its length, NULL if invalid. */
unsigned char *azure_b64_decode(const char *text, size_t *out_len);

/* Percent-encodes everything but RFC 3986 unreserved characters, and '/'
 * too when keep_slash.  Returns malloc'd text or NULL on ENOMEM. */
char *azure_pct_encode(const char *text, int keep_slash);
/* Decodes %XX (and nothing else: '+' stays '+').  malloc'd, NULL if bad. */
char *azure_pct_decode(const char *text, size_t len);

/* RFC 1123 date in GMT, independent of the locale. */
void azure_http_date(time_t t, char out[AZURE_DATE_SIZE]);
/* Parses an RFC 1123 date; (time_t)-1 when malformed. */
time_t azure_parse_http_date(const char *text);

#endif
