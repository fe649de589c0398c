/* connstr.c - parse Azure Storage connection strings.
 *
 * Split on ';', then on the first '=' (SAS tokens and keys contain '=');
 * key names are case-insensitive; empty segments (a trailing ';') are fine.
 * Plain http is only ever used when the string itself asks for it, and a
 * secret value is never copied into an error message: even an unknown key
 * name is only echoed when it looks like a name, because a pasted bare key
 * ("Eby8...==") splits into a "name" that is the secret.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "azure_sign.h"
#include "connstr.h"

enum cs_key {
	CS_PROTOCOL, CS_ACCOUNT, CS_KEY, CS_SUFFIX, CS_BLOB_ENDPOINT, CS_SAS,
	CS_DEVSTORE, CS_N_KEYS
};

static const char *const cs_names[CS_N_KEYS] = {
	"DefaultEndpointsProtocol", "AccountName", "AccountKey", "EndpointSuffix",
	"BlobEndpoint", "SharedAccessSignature", "UseDevelopmentStorage",
};

/* Present in portal-generated strings, meaningless for blob storage. */
static const char *const cs_ignored[] = {
	"QueueEndpoint", "TableEndpoint", "FileEndpoint", "BlobSecondaryEndpoint",
	"QueueSecondaryEndpoint", "TableSecondaryEndpoint", "FileSecondaryEndpoint",
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errlen == 0)
		return;
	n = snprintf(err, errlen, "connection string: ");
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static int looks_like_name(const char *s, size_t len)
{
	if (len == 0 || len > 40)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalpha((unsigned char)s[i]))
			return 0;
	return 1;
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

static int valid_host_chars(const char *s)
{
	if (*s == '\0' || *s == '.' || *s == '-')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-')
			return 0;
	return 1;
}

/* A DNS name or an IPv4 address: letters, digits, '.', '-' and (docker
 * names) '_', neither starting nor ending with '.' or '-', no empty label. */
static int valid_host_name(const char *s, size_t len)
{
	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' || s[len - 1] == '.' ||
	    s[len - 1] == '-')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return 0;
		if (s[i] == '.' && s[i + 1] == '.')
			return 0;
	}
	return 1;
}

/* Accepts scheme://host[:port][/path]; returns the normalised endpoint
 * (lowercase scheme, no trailing '/') or NULL with an error. */
static char *parse_endpoint(const char *url, bool *http, char *err, size_t errlen)
{
	const char *rest;
	char *out;
	size_t len;

	if (strncasecmp(url, "https://", 8) == 0) {
		*http = false;
		rest = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		*http = true;
		rest = url + 7;
	} else {
		set_err(err, errlen, "BlobEndpoint must start with https:// (or http://)");
		return NULL;
	}
	if (strpbrk(rest, "?#@ \t\"'<>\\") != NULL) {
		set_err(err, errlen, "BlobEndpoint must be scheme://host[:port][/path], "
			"without query, fragment or user");
		return NULL;
	}
	size_t host_len;
	if (rest[0] == '[') {
		/* An IPv6 literal: [2001:db8::1]. */
		const char *close = strchr(rest, ']');
		host_len = close ? (size_t)(close - rest) + 1 : 0;
		if (host_len < 3 || strspn(rest + 1, "0123456789abcdefABCDEF:.") != host_len - 2) {
			set_err(err, errlen, "BlobEndpoint has a bad IPv6 address");
			return NULL;
		}
	} else {
		host_len = strcspn(rest, ":/");
		if (host_len == 0) {
			set_err(err, errlen, "BlobEndpoint has no host");
			return NULL;
		}
		/* libcurl would only refuse it at the first request, as a
		 * transport error; say so now, at -t. */
		if (!valid_host_name(rest, host_len)) {
			set_err(err, errlen, "BlobEndpoint's host '%.*s' is not a host name (letters, "
				"digits, '.', '-')", (int)(host_len > 80 ? 80 : host_len), rest);
			return NULL;
		}
	}
	if (rest[host_len] != '\0' && rest[host_len] != ':' && rest[host_len] != '/') {
		set_err(err, errlen, "BlobEndpoint must be scheme://host[:port][/path]");
		return NULL;
	}
	if (rest[host_len] == ':') {
		const char *port = rest + host_len + 1;
		size_t digits = strspn(port, "0123456789");
		if (digits == 0 || digits > 5 || (port[digits] != '\0' && port[digits] != '/') ||
		    atoi(port) < 1 || atoi(port) > 65535) {
			set_err(err, errlen, "BlobEndpoint has a bad port");
			return NULL;
		}
	}
	len = strlen(url);
	while (len > 0 && url[len - 1] == '/')
		len--;
	out = strndup(url, len);
	if (out == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	for (char *p = out; *p != ':'; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

static int valid_account(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s))
			return 0;
	return 1;
}

int connstr_parse(const char *text, struct azure_conn *out, char *err, size_t errlen)
{
	char *val[CS_N_KEYS] = { 0 };
	const char *p = text;
	int rc = -1, segment = 0;
	bool http = false;

	memset(out, 0, sizeof(*out));
	if (text == NULL || *text == '\0') {
		set_err(err, errlen, "empty");
		goto out;
	}

	while (*p != '\0') {
		const char *semi = strchr(p, ';');
		size_t len = semi ? (size_t)(semi - p) : strlen(p);
		const char *seg = p;
		int k;

		p = semi ? semi + 1 : p + len;
		segment++;
		trim(&seg, &len);
		if (len == 0)
			continue;
		const char *eq = memchr(seg, '=', len);
		if (eq == NULL) {
			set_err(err, errlen, "part %d has no '=' (expected Name=Value; parts are "
				"separated by ';')", segment);
			goto out;
		}
		const char *name = seg, *value = eq + 1;
		size_t name_len = (size_t)(eq - seg), value_len = len - name_len - 1;
		trim(&name, &name_len);
		trim(&value, &value_len);

		for (k = 0; k < CS_N_KEYS; k++)
			if (strlen(cs_names[k]) == name_len &&
			    strncasecmp(cs_names[k], name, name_len) == 0)
				break;
		if (k == CS_N_KEYS) {
			size_t i;
			for (i = 0; i < sizeof(cs_ignored) / sizeof(cs_ignored[0]); i++)
				if (strlen(cs_ignored[i]) == name_len &&
				    strncasecmp(cs_ignored[i], name, name_len) == 0)
					break;
			if (i < sizeof(cs_ignored) / sizeof(cs_ignored[0]))
				continue;
			if (looks_like_name(name, name_len))
				set_err(err, errlen, "unknown key '%.*s' (part %d)",
					(int)name_len, name, segment);
			else
				set_err(err, errlen, "part %d is not Name=Value (not shown: it "
					"may be a secret)", segment);
			goto out;
		}
		if (val[k] != NULL) {
			set_err(err, errlen, "%s given twice", cs_names[k]);
			goto out;
		}
		if (value_len == 0) {
			set_err(err, errlen, "%s is empty", cs_names[k]);
			goto out;
		}
		val[k] = strndup(value, value_len);
		if (val[k] == NULL) {
			set_err(err, errlen, "out of memory");
			goto out;
		}
	}

	if (val[CS_DEVSTORE] != NULL) {
		if (strcasecmp(val[CS_DEVSTORE], "true") != 0) {
			set_err(err, errlen, "UseDevelopmentStorage must be 'true'");
			goto out;
		}
		/* Only the endpoint may be moved (Azurite on another port). */
		for (int k = 0; k < CS_N_KEYS; k++) {
			if (k != CS_DEVSTORE && k != CS_BLOB_ENDPOINT && val[k] != NULL) {
				set_err(err, errlen, "UseDevelopmentStorage=true cannot be "
					"combined with %s", cs_names[k]);
				goto out;
			}
		}
		val[CS_ACCOUNT] = strdup(AZURITE_ACCOUNT);
		val[CS_KEY] = strdup(AZURITE_KEY);
		if (val[CS_BLOB_ENDPOINT] == NULL)
			val[CS_BLOB_ENDPOINT] = strdup(AZURITE_BLOB_ENDPOINT);
		if (val[CS_ACCOUNT] == NULL || val[CS_KEY] == NULL || val[CS_BLOB_ENDPOINT] == NULL) {
			set_err(err, errlen, "out of memory");
			goto out;
		}
	}

	if (val[CS_PROTOCOL] != NULL) {
		if (strcasecmp(val[CS_PROTOCOL], "https") == 0) {
			http = false;
		} else if (strcasecmp(val[CS_PROTOCOL], "http") == 0) {
			http = true;
		} else {
			set_err(err, errlen, "DefaultEndpointsProtocol must be https or http, "
				"not '%s'", val[CS_PROTOCOL]);
			goto out;
		}
	}

	if (val[CS_ACCOUNT] != NULL && !valid_account(val[CS_ACCOUNT])) {
		set_err(err, errlen, "AccountName must be letters and digits only");
		goto out;
	}

	if (val[CS_KEY] != NULL && val[CS_SAS] != NULL) {
		set_err(err, errlen, "both AccountKey and SharedAccessSignature are given; "
			"use one");
		goto out;
	}
	if (val[CS_KEY] != NULL) {
		if (val[CS_ACCOUNT] == NULL) {
			set_err(err, errlen, "AccountName is missing (AccountKey needs it)");
			goto out;
		}
		out->key = azure_b64_decode(val[CS_KEY], &out->key_len);
		if (out->key == NULL) {
			set_err(err, errlen, "AccountKey is not valid base64 (truncated or "
				"mistyped? copy it again from the portal)");
			goto out;
		}
	} else if (val[CS_SAS] != NULL) {
		const char *sas = val[CS_SAS];
		if (*sas == '?')
			sas++;
		if (strstr(sas, "sig=") == NULL || strpbrk(sas, " \t\"'<>#") != NULL) {
			set_err(err, errlen, "SharedAccessSignature does not look like a SAS "
				"token (expected sv=...&sig=...)");
			goto out;
		}
		out->sas = strdup(sas);
		if (out->sas == NULL) {
			set_err(err, errlen, "out of memory");
			goto out;
		}
	} else {
		set_err(err, errlen, "no credential: give AccountKey or SharedAccessSignature");
		goto out;
	}

	if (val[CS_BLOB_ENDPOINT] != NULL) {
		bool endpoint_http;
		if (val[CS_SUFFIX] != NULL) {
			set_err(err, errlen, "give BlobEndpoint or EndpointSuffix, not both");
			goto out;
		}
		out->endpoint = parse_endpoint(val[CS_BLOB_ENDPOINT], &endpoint_http,
					       err, errlen);
		if (out->endpoint == NULL)
			goto out;
		/* An explicit https protocol is a promise: never quietly downgrade. */
		if (endpoint_http && val[CS_PROTOCOL] != NULL && !http) {
			set_err(err, errlen, "BlobEndpoint is http:// but "
				"DefaultEndpointsProtocol=https");
			goto out;
		}
		http = endpoint_http;
	} else {
		const char *suffix = val[CS_SUFFIX] ? val[CS_SUFFIX] : "core.windows.net";
		if (val[CS_ACCOUNT] == NULL) {
			set_err(err, errlen, "AccountName is missing (or give BlobEndpoint)");
			goto out;
		}
		if (!valid_host_chars(suffix)) {
			set_err(err, errlen, "EndpointSuffix is not a host name");
			goto out;
		}
		size_t need = strlen(val[CS_ACCOUNT]) + strlen(suffix) + 20;
		out->endpoint = malloc(need);
		if (out->endpoint == NULL) {
			set_err(err, errlen, "out of memory");
			goto out;
		}
		snprintf(out->endpoint, need, "%s://%s.blob.%s", http ? "http" : "https",
			 val[CS_ACCOUNT], suffix);
	}
	out->http = http;
	out->account = val[CS_ACCOUNT];
	val[CS_ACCOUNT] = NULL;
	rc = 0;
out:
	for (int k = 0; k < CS_N_KEYS; k++) {
		if (val[k] != NULL) {
			explicit_bzero(val[k], strlen(val[k]));
			free(val[k]);
		}
	}
	if (rc != 0)
		connstr_free(out);
	return rc;
}

void connstr_free(struct azure_conn *conn)
{
	if (conn->key != NULL)
		explicit_bzero(conn->key, conn->key_len);
	if (conn->sas != NULL)
		explicit_bzero(conn->sas, strlen(conn->sas));
	free(conn->endpoint);
	free(conn->account);
	free(conn->key);
	free(conn->sas);
	memset(conn, 0, sizeof(*conn));
}

int connstr_from_account_url(const char *url, struct azure_conn *out, char *err,
			     size_t errlen)
{
	const char *host, *slash;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (strncmp(url, "https://", 8) != 0) {
		snprintf(err, errlen, "account_url must be https:// (a token must not travel "
			 "in clear text)");
		return -1;
	}
	out->endpoint = strdup(url);
	if (out->endpoint == NULL)
		goto nomem;
	len = strlen(out->endpoint);
	while (len > 8 && out->endpoint[len - 1] == '/')
		out->endpoint[--len] = '\0';
	host = out->endpoint + 8;
	slash = strchr(host, '/');
	/* ACCOUNT.blob.core.windows.net, or an emulator's https://host:port/ACCOUNT. */
	if (slash != NULL && slash[1] != '\0')
		out->account = strndup(slash + 1, strcspn(slash + 1, "/"));
	else
		out->account = strndup(host, strcspn(host, "."));
	if (out->account == NULL)
		goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	connstr_free(out);
	return -1;
}
