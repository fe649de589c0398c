/* secrets.c - a child's side of the run's secrets: read them from the
 * memfd its supervisor handed over (run_secrets.c makes it). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secrets.h"

#define SECRETS_MAX (256u << 10)

char *secrets_lookup(const char *name)
{
	const char *var = getenv("MAB_SECRETS_FD");
	char *text = NULL, *found = NULL;
	struct stat st;
	size_t name_len = strlen(name);
	ssize_t n;
	char *end;
	long fd;

	if (var == NULL || *var == '\0')
		return NULL;
	errno = 0;
	fd = strtol(var, &end, 10);
	if (errno != 0 || *end != '\0' || fd < 3 || fd > 1024)
		return NULL;
	/* Only a sealed memfd is ours: a stray fd 5 is not read. */
	if (fstat((int)fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > SECRETS_MAX || fcntl((int)fd, F_GET_SEALS) < 0 ||
	    !(fcntl((int)fd, F_GET_SEALS) & F_SEAL_WRITE))
		return NULL;
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL)
		return NULL;
	n = pread((int)fd, text, (size_t)st.st_size, 0);
	if (n != st.st_size)
		goto out;
	text[n] = '\0';
	for (char *line = text; *line != '\0';) {
		char *nl = strchr(line, '\n');
		if (nl == NULL)
			break;
		*nl = '\0';
		if (strncmp(line, name, name_len) == 0 && line[name_len] == '=') {
			found = strdup(line + name_len + 1);
			break;
		}
		line = nl + 1;
	}
out:
	explicit_bzero(text, (size_t)st.st_size + 1);
	free(text);
	return found;
}

bool secrets_lookup_present(const char *name)
{
	char *v = secrets_lookup(name);

	if (v == NULL)
		return false;
	explicit_bzero(v, strlen(v));
	free(v);
	return true;
}

char *secrets_escape(const char *value)
{
	size_t len = strlen(value);
	char *out = malloc(3 * len + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (const char *s = value; *s != '\0'; s++) {
		if (*s == '\n' || *s == '\r' || *s == '%') {
			snprintf(p, 4, "%%%02X", (unsigned char)*s);
			p += 3;
		} else {
			*p++ = *s;
		}
	}
	*p = '\0';
	return out;
}

char *secrets_unescape(const char *value)
{
	char *out = malloc(strlen(value) + 1), *p = out;

	if (out == NULL)
		return NULL;
	for (const char *s = value; *s != '\0'; s++) {
		if (s[0] == '%' && strncmp(s + 1, "0A", 2) == 0) {
			*p++ = '\n';
			s += 2;
		} else if (s[0] == '%' && strncmp(s + 1, "0D", 2) == 0) {
			*p++ = '\r';
			s += 2;
		} else if (s[0] == '%' && strncmp(s + 1, "25", 2) == 0) {
			*p++ = '%';
			s += 2;
		} else {
			*p++ = *s;
		}
	}
	*p = '\0';
	return out;
}
