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
 * an error that makes the directory unusable. */
int state_load(const char *dir, struct daemon_state *st, char *err, size_t errlen);
int state_save(const char *dir, const struct daemon_state *st, char *err, size_t errlen);

/* Encoding, shared with the tests. */
char *state_encode(const struct daemon_state *st);
int state_decode(const char *json, size_t len, struct daemon_state *st,
		 char *err, size_t errlen);

#endif
