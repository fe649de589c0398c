/* fuzz_state.c - state_decode() on arbitrary state.json contents.
 *
 * Checks: a decoded state has a known breaker state; encoding it gives JSON
 * that decodes to the same values (what state_save writes, state_load must
 * read back).
 */
#include "config.h"

#include <stdbool.h>

#include "fuzz.h"
#include "state_file.h"

static bool known_breaker(const char *s)
{
	return strcmp(s, "closed") == 0 || strcmp(s, "open") == 0 ||
	       strcmp(s, "half-open") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct daemon_state st, again;
	char err[256];
	char *json;

	if (size > 64 * 1024)
		return 0;
	err[0] = '\0';
	if (state_decode((const char *)data, size, &st, err, sizeof(err)) != 0) {
		FUZZ_CHECK(err[0] != '\0', "failed without a message");
		FUZZ_CHECK(st.last_run == NULL, "failure leaves last_run");
		state_free(&st);
		return 0;
	}
	FUZZ_CHECK(known_breaker(st.breaker_state), "breaker state '%s'", st.breaker_state);
	json = state_encode(&st);
	FUZZ_CHECK(json != NULL, "a decoded state does not encode");
	err[0] = '\0';
	FUZZ_CHECK(state_decode(json, strlen(json), &again, err, sizeof(err)) == 0,
		   "the encoding does not decode: %s\n%s", err, json);
	FUZZ_CHECK(again.last_run_started == st.last_run_started &&
		   again.last_run_finished == st.last_run_finished &&
		   again.last_complete_finished == st.last_complete_finished &&
		   strcmp(again.last_complete_set, st.last_complete_set) == 0 &&
		   memcmp(again.runs, st.runs, sizeof(st.runs)) == 0 &&
		   strcmp(again.breaker_state, st.breaker_state) == 0 &&
		   again.breaker_failures == st.breaker_failures &&
		   again.breaker_opened == st.breaker_opened &&
		   again.breaker_transitions == st.breaker_transitions,
		   "values change on the way through:\n%s", json);
	FUZZ_CHECK((again.last_run == NULL) == (st.last_run == NULL), "last_run lost");
	bson_free(json);
	state_free(&again);
	state_free(&st);
	return 0;
}
