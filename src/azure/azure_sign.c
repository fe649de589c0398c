/* azure_sign.c - Shared Key StringToSign, HMAC-SHA256, base64, %-encoding.
 *
 * The StringToSign must match what Azure rebuilds from the request byte for
 * byte, so this file builds it from the same header list the request sends
 * (azure_request.c passes exactly that list).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "azure_sign.h"

struct strbuild {
	char *buf;
	size_t len, cap;
	int failed;
};

static void sb_add(struct strbuild *sb, const char *s, size_t n)
{
	if (sb->failed)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 256;
		while (cap < sb->len + n + 1)
			cap *= 2;
		char *p = realloc(sb->buf, cap);
		if (p == NULL) {
			sb->failed = 1;
			return;
		}
		sb->buf = p;
		sb->cap = cap;
	}
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

static void sb_str(struct strbuild *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

static const char *find_header(const struct azure_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	return "";
}

struct kv {
	char *name;
	char *value;
};

static int kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c != 0 ? c : strcmp(x->value, y->value);
}

static void lowercase(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Splits the query into decoded, lowercased-name pairs, sorted by name then
 * value, so equal names end up adjacent for the comma-joined form. */
static int split_query(const char *query, struct kv **kv_out, size_t *n_out)
{
	struct kv *kv = NULL;
	size_t n = 0, cap = 0;
	const char *p = query;

	while (p != NULL && *p != '\0') {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t name_len = eq ? (size_t)(eq - p) : len;

		if (len > 0 && eq != NULL && eq + 1 < p + len) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				struct kv *nkv = realloc(kv, cap * sizeof(*kv));
				if (nkv == NULL)
					goto fail;
				kv = nkv;
			}
			kv[n].name = azure_pct_decode(p, name_len);
			kv[n].value = azure_pct_decode(eq + 1, (size_t)(p + len - eq - 1));
			n++;
			if (kv[n - 1].name == NULL || kv[n - 1].value == NULL)
				goto fail;
			lowercase(kv[n - 1].name);
		}
		p = amp ? amp + 1 : NULL;
	}
	if (n > 0)
		qsort(kv, n, sizeof(*kv), kv_cmp);
	*kv_out = kv;
	*n_out = n;
	return 0;
fail:
	for (size_t i = 0; i < n; i++) {
		free(kv[i].name);
		free(kv[i].value);
	}
	free(kv);
	return -1;
}

char *azure_string_to_sign(const char *verb, uint64_t content_length,
			   const struct azure_header *headers, size_t n_headers,
			   const char *account, const char *path, const char *query)
{
	static const char *const standard[] = {
		"Content-Encoding", "Content-Language", NULL /* Content-Length */,
		"Content-MD5", "Content-Type", "Date", "If-Modified-Since",
		"If-Match", "If-None-Match", "If-Unmodified-Since", "Range",
	};
	struct strbuild sb = { 0 };
	struct kv *xms = NULL, *params = NULL;
	size_t n_xms = 0, n_params = 0;
	char *out = NULL;

	sb_str(&sb, verb);
	sb_str(&sb, "\n");
	for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++) {
		if (standard[i] == NULL) {
			if (content_length > 0) {
				char num[24];
				snprintf(num, sizeof(num), "%llu", (unsigned long long)content_length);
				sb_str(&sb, num);
			}
		} else {
			sb_str(&sb, find_header(headers, n_headers, standard[i]));
		}
		sb_str(&sb, "\n");
	}

	xms = calloc(n_headers ? n_headers : 1, sizeof(*xms));
	if (xms == NULL)
		goto out;
	for (size_t i = 0; i < n_headers; i++) {
		if (strncasecmp(headers[i].name, "x-ms-", 5) != 0)
			continue;
		xms[n_xms].name = strdup(headers[i].name);
		xms[n_xms].value = strdup(headers[i].value);
		n_xms++;
		if (xms[n_xms - 1].name == NULL || xms[n_xms - 1].value == NULL)
			goto out;
		lowercase(xms[n_xms - 1].name);
	}
	/* Metadata names are restricted to [a-z][a-z0-9]* so that strcmp order
	 * is the order Azure uses (azure-blob.md). */
	qsort(xms, n_xms, sizeof(*xms), kv_cmp);
	for (size_t i = 0; i < n_xms; i++) {
		sb_str(&sb, xms[i].name);
		sb_str(&sb, ":");
		sb_str(&sb, xms[i].value);
		sb_str(&sb, "\n");
	}

	sb_str(&sb, "/");
	sb_str(&sb, account);
	sb_str(&sb, path);
	if (split_query(query, &params, &n_params) != 0)
		goto out;
	for (size_t i = 0; i < n_params; i++) {
		if (i > 0 && strcmp(params[i].name, params[i - 1].name) == 0) {
			sb_str(&sb, ",");
		} else {
			sb_str(&sb, "\n");
			sb_str(&sb, params[i].name);
			sb_str(&sb, ":");
		}
		sb_str(&sb, params[i].value);
	}
	if (!sb.failed) {
		out = sb.buf;
		sb.buf = NULL;
	}
out:
	for (size_t i = 0; xms != NULL && i < n_xms; i++) {
		free(xms[i].name);
		free(xms[i].value);
	}
	free(xms);
	for (size_t i = 0; i < n_params; i++) {
		free(params[i].name);
		free(params[i].value);
	}
	free(params);
	free(sb.buf);
	return out;
}

int azure_hmac_b64(const unsigned char *key, size_t key_len, const char *msg,
		   char out[AZURE_SIG_B64_SIZE])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;

	if (key_len > INT32_MAX)
		return -1;
	if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg,
		 strlen(msg), mac, &mac_len) == NULL || mac_len != 32)
		return -1;
	azure_b64_encode(mac, mac_len, out);
	return 0;
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void azure_b64_encode(const void *data, size_t len, char *out)
{
	const unsigned char *p = data;
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;
	return p ? (int)(p - b64_alphabet) : -1;
}

unsigned char *azure_b64_decode(const char *text, size_t *out_len)
{
	size_t len = strlen(text), pad = 0, o = 0;
	unsigned char *out;

	if (len == 0 || len % 4 != 0)
		return NULL;
	if (text[len - 1] == '=')
		pad++;
	if (text[len - 2] == '=')
		pad++;
	out = malloc(len / 4 * 3);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int last = i + 4 == len;
		for (int k = 0; k < 4; k++) {
			if (last && text[i + k] == '=' && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64_value(text[i + k]);
			if (v[k] < 0)
				goto bad;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = (unsigned char)(w >> 16);
		if (!last || pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (!last || pad < 1)
			out[o++] = (unsigned char)w;
		/* Non-canonical encodings (stray bits under the padding) are
		 * typos, not keys. */
		if (last && ((pad == 2 && (w & 0xffff)) || (pad == 1 && (w & 0xff))))
			goto bad;
	}
	*out_len = o;
	return out;
bad:
	explicit_bzero(out, len / 4 * 3);
	free(out);
	return NULL;
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

char *azure_pct_encode(const char *text, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(text);
	char *out = malloc(len * 3 + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (unreserved(*p) || (keep_slash && *p == '/')) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *azure_pct_decode(const char *text, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '%') {
			*o++ = text[i];
			continue;
		}
		if (i + 2 >= len) {
			free(out);
			return NULL;
		}
		int h = hexval(text[i + 1]), l = hexval(text[i + 2]);
		if (h < 0 || l < 0 || (h == 0 && l == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(h << 4 | l);
		i += 2;
	}
	*o = '\0';
	return out;
}

void azure_http_date(time_t t, char out[AZURE_DATE_SIZE])
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		out[0] = '\0';
		return;
	}
	/* Unsigned and reduced so the compiler can see it fits. */
	snprintf(out, AZURE_DATE_SIZE, "%s, %02u %s %04u %02u:%02u:%02u GMT",
		 days[tm.tm_wday % 7], (unsigned)tm.tm_mday % 100u, months[tm.tm_mon % 12],
		 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)tm.tm_hour % 100u,
		 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
}

time_t azure_parse_http_date(const char *text)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char wday[4], mon[4], zone[4];
	int day, year, hour, min, sec, used = 0;
	struct tm tm = { 0 };

	if (sscanf(text, "%3s, %d %3s %d %d:%d:%d %3s%n", wday, &day, mon, &year,
		   &hour, &min, &sec, zone, &used) != 8)
		return (time_t)-1;
	if (text[used] != '\0' || strcmp(zone, "GMT") != 0 || strlen(wday) != 3)
		return (time_t)-1;
	const char *m = strstr(months, mon);
	if (m == NULL || strlen(mon) != 3 || (m - months) % 3 != 0)
		return (time_t)-1;
	if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 || year < 1970 ||
	    hour < 0 || min < 0 || sec < 0)
		return (time_t)-1;
	tm.tm_mday = day;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year = year - 1900;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	return timegm(&tm);
}
