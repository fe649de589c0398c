/* state_file.h - what the daemon remembers across restarts: the last run
 * and its collections, the last complete backup set, run counters, and the
 * storage breaker.  Kept as JSON in [state] dir/state.json, replaced
 * atomically (write a temporary file, fsync, rename, fsync the directory).
 */
#ifndef MAB_STATE_FILE_H
#define MAB_STATE_FILE_H

#include <bson/bson.h>
#include <stdint.h>
#include <time.h>

enum run_result { RESULT_COMPLETE, RESULT_PARTIAL, RESULT_FAILED, RESULT_CANCELLED,
		  RESULT_COUNT };

struct daemon_state {
	bson_t *last_run;              /* status-shaped object, or NULL */
	time_t last_run_started;
	time_t last_run_finished;
	char last_complete_set[1024];
	time_t last_complete_finished;
	uint64_t runs[RESULT_COUNT];
	char breaker_state[16];        /* closed, open, half-open */
	int breaker_failures;
	time_t breaker_opened;
	uint64_t breaker_transitions;
};

const char *run_result_name(enum run_result r);

void state_init(struct daemon_state *st);
void state_free(struct daemon_state *st);
/* Missing file: empty state, 0.  Unreadable or garbage: the file is moved
 * aside to state.json.bad, empty state, 1 with the reason in err.  -1 on
 * an error that makes the directory unusable.  Fields out of range (see
 * state_decode_report) are logged as warnings and take their defaults;
 * the file is then loaded (0). */
int state_load(const char *dir, struct daemon_state *st, char *err, size_t errlen);
int state_save(const char *dir, const struct daemon_state *st, char *err, size_t errlen);

/* Encoding, shared with the tests. */
char *state_encode(const struct daemon_state *st);

/* Called once for every field refused while decoding, with a message that
 * names the field, its value, why, and the default used instead:
 * "runs.complete: -4 is not a whole number from 0 to ...; using 0". */
typedef void (*state_report_fn)(void *ctx, const char *msg);

/* Not JSON, not an object, or not "format": 1: -1 with the reason in err
 * (state_load moves such a file aside).  Otherwise every field is checked
 * on its own, as the configuration is: counters from 0 to 2^53 - 1,
 * breaker.failures from 0 to 10^9, times 0 (never) or from 2000-01-01 to a
 * day from now (and last_run_finished not before last_run_started),
 * breaker.state one of closed, open, half-open, last_complete_set at most
 * 1023 bytes without control characters, last_run an object with a
 * printable run_id, a known result and a list of collections.  A field
 * that is refused is reported and keeps its default (0, "", closed, no
 * last run); the rest is kept.  Returns the number of fields refused.
 * state_load reports through msg_warn(). */
int state_decode_report(const char *json, size_t len, struct daemon_state *st,
			state_report_fn report, void *ctx, char *err, size_t errlen);
/* The same without reports: 0 or -1. */
int state_decode(const char *json, size_t len, struct daemon_state *st,
		 char *err, size_t errlen);

#endif
