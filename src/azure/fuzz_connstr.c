/* fuzz_connstr.c - connstr_parse() on arbitrary connection strings.
 *
 * Checks: a parsed string has an endpoint that agrees with its http flag
 * and exactly one credential; an error message never contains the value of
 * AccountKey or SharedAccessSignature (each is replaced by a marker of the
 * same length, and the string parsed again).
 */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <strings.h>

#include "connstr.h"
#include "fuzz.h"

static const char *const secret_keys[] = { "AccountKey", "SharedAccessSignature" };

static void trim(char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* Overwrites every secret value in text with the marker pattern; true if
 * there was one. */
static bool mark_secrets(char *text)
{
	static const char pattern[] = "Zq7Xw";
	bool any = false;

	for (char *p = text; *p != '\0';) {
		char *semi = strchr(p, ';');
		size_t len = semi != NULL ? (size_t)(semi - p) : strlen(p);
		char *seg = p, *eq;

		p = semi != NULL ? semi + 1 : p + len;
		trim(&seg, &len);
		eq = memchr(seg, '=', len);
		if (eq == NULL)
			continue;
		char *name = seg, *value = eq + 1;
		size_t name_len = (size_t)(eq - seg), value_len = len - name_len - 1;
		trim(&name, &name_len);
		trim(&value, &value_len);
		for (size_t k = 0; k < sizeof(secret_keys) / sizeof(secret_keys[0]); k++) {
			if (strlen(secret_keys[k]) == name_len &&
			    strncasecmp(secret_keys[k], name, name_len) == 0 && value_len >= 6) {
				for (size_t i = 0; i < value_len; i++)
					value[i] = pattern[i % (sizeof(pattern) - 1)];
				any = true;
			}
		}
	}
	return any;
}

static void check_conn(const struct azure_conn *c)
{
	size_t len;

	FUZZ_CHECK(c->endpoint != NULL, "no endpoint");
	len = strlen(c->endpoint);
	FUZZ_CHECK(strncmp(c->endpoint, c->http ? "http://" : "https://", c->http ? 7 : 8) == 0,
		   "endpoint %s, http %d", c->endpoint, c->http);
	FUZZ_CHECK(len > 0 && c->endpoint[len - 1] != '/', "endpoint %s ends in /",
		   c->endpoint);
	FUZZ_CHECK((c->key != NULL) != (c->sas != NULL), "key %p, sas %p", (void *)c->key,
		   (void *)c->sas);
	FUZZ_CHECK(c->key == NULL || c->account != NULL, "a key without an account");
	FUZZ_CHECK(c->sas == NULL || c->sas[0] != '?', "SAS keeps its '?'");
}

/* Any 5 characters of a run of the pattern: a rotation of "Zq7Xw". */
static bool has_marker(const char *s)
{
	static const char *const rotations[] = { "Zq7Xw", "q7XwZ", "7XwZq", "XwZq7", "wZq7X" };

	for (size_t i = 0; i < sizeof(rotations) / sizeof(rotations[0]); i++)
		if (strstr(s, rotations[i]) != NULL)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct azure_conn conn;
	char err[256];
	char *text;

	if (size > 8192)
		return 0;
	text = fuzz_cstr(data, size);
	err[0] = '\0';
	if (connstr_parse(text, &conn, err, sizeof(err)) == 0) {
		check_conn(&conn);
		connstr_free(&conn);
	} else {
		FUZZ_CHECK(err[0] != '\0', "failed without a message");
		FUZZ_CHECK(conn.endpoint == NULL && conn.key == NULL && conn.sas == NULL &&
			   conn.account == NULL, "failure leaves fields set");
	}
	/* The same string with its secrets replaced by markers: no message may
	 * show any part of them. */
	if (!has_marker(text) && mark_secrets(text)) {
		err[0] = '\0';
		if (connstr_parse(text, &conn, err, sizeof(err)) == 0)
			connstr_free(&conn);
		else
			FUZZ_CHECK(!has_marker(err), "a secret is in the message: %s", err);
	}
	free(text);
	return 0;
}
