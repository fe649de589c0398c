/* iso8601.h - the date-time text mongo-azure-backupctl reads and prints:
 * "2026-03-08T01:30:00", optionally followed by "Z" or "+HH:MM"/"-HH:MM".
 * Nothing else is accepted (no week dates, no fractions, no lowercase).
 */
#ifndef MAB_ISO8601_H
#define MAB_ISO8601_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iso8601 {
	int year, month, day, hour, minute, second;
	bool has_offset;	/* "Z" or an explicit offset was given */
	long offset;		/* seconds east of UTC, when has_offset */
};

/* 0, or -1 with a message quoting the text and saying what was expected. */
int iso8601_parse(const char *text, struct iso8601 *out, char *err, size_t errlen);
/* The instant (seconds since the epoch) the text means.  Without an offset
 * it is wall-clock time in zone tz: a time the clock shows twice is the
 * first, a time it skips is read with the offset from before the jump.
 * 0, or -1 with err set when the zone cannot be loaded. */
int iso8601_instant(const struct iso8601 *t, const char *tz, int64_t *out,
		    char *err, size_t errlen);
/* Writes "YYYY-MM-DDTHH:MM:SS+HH:MM" for instant t shown at UTC offset
 * `offset` (seconds east); "+00:00" for UTC. */
void iso8601_format(int64_t t, long offset, char *buf, size_t len);

#endif
