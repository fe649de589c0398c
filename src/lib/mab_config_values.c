/* mab_config_values.c - the configuration's value types: sizes ("64M"),
 * durations ("30m"), booleans, trimmed copies, and the [mongodb]
 * collections list's names.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cron.h"
#include "log.h"
#include "mab_config.h"
#include "secrets.h"
#include "path_template.h"
#include "xio.h"
#include "mab_config_values.h"

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

int config_parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long n;
	uint64_t mult = 1;

	while (isspace((unsigned char)*text))
		text++;
	if (!isdigit((unsigned char)*text))
		return -1;
	errno = 0;
	n = strtoull(text, &end, 10);
	if (errno != 0)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': mult = 1ULL << 10; end++; break;
	case 'M': mult = 1ULL << 20; end++; break;
	case 'G': mult = 1ULL << 30; end++; break;
	case 'T': mult = 1ULL << 40; end++; break;
	default: return -1;
	}
	if (mult > 1 && (*end == 'i' || *end == 'I'))
		end++;
	if (mult > 1 && (*end == 'b' || *end == 'B'))
		end++;
	if (*end != '\0' || (n != 0 && n > UINT64_MAX / mult))
		return -1;
	*out = (uint64_t)n * mult;
	return 0;
}

int config_parse_duration(const char *text, int *out)
{
	char *end;
	long long n;
	long long mult = 1;

	while (isspace((unsigned char)*text))
		text++;
	if (!isdigit((unsigned char)*text))
		return -1;
	errno = 0;
	n = strtoll(text, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 's': end++; break;
	case 'm': mult = 60; end++; break;
	case 'h': mult = 3600; end++; break;
	case 'd': mult = 86400; end++; break;
	default: return -1;
	}
	if (*end != '\0' || n > INT_MAX / mult)
		return -1;
	*out = (int)(n * mult);
	return 0;
}

int config_parse_bool(const char *text, bool *out)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0) { *out = true; return 0; }
		if (strcasecmp(text, no[i]) == 0) { *out = false; return 0; }
	}
	return -1;
}

char *config_trim_copy(const char *start, size_t len)
{
	while (len > 0 && isspace((unsigned char)*start)) {
		start++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)start[len - 1]))
		len--;
	return strndup(start, len);
}

/* MongoDB forbids '$' and NUL in collection names and "system." is internal. */
const char *config_collection_name_problem(const char *name)
{
	if (*name == '\0')
		return "empty collection name";
	if (strchr(name, '$') != NULL)
		return "collection names cannot contain '$'";
	if (strncmp(name, "system.", 7) == 0)
		return "system collections are not backed up";
	if (strlen(name) > 255)
		return "collection name longer than 255 bytes";
	return NULL;
}
