/* breaker.h - the circuit breaker on the storage, owned by the supervisor.
 *
 * closed --(failure_threshold consecutive failed uploads)--> open
 * open --(open_seconds later)--> half-open: exactly one trial upload
 * half-open --success--> closed;  --failure--> open again.
 * A "failure" is an upload that failed after upload-blob's own retries with
 * a transient cause (5xx, 408, 429, the network).  Refused credentials and
 * other client errors are not outages and do not count; neither does
 * anything MongoDB does.
 */
#ifndef MAB_BREAKER_H
#define MAB_BREAKER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker {
	enum breaker_state state;
	int failures;              /* consecutive */
	int threshold;
	int open_seconds;
	time_t opened_at;
	bool trial_in_flight;
	uint64_t transitions;
	/* Called after every state change (the daemon persists it). */
	void (*on_change)(void *ctx);
	void *ctx;
};

void breaker_init(struct breaker *b, int threshold, int open_seconds);
/* May an upload start now?  In half-open this hands out the one trial. */
bool breaker_allow(struct breaker *b, time_t now);
/* The outcome of an upload that was allowed. */
void breaker_success(struct breaker *b);
void breaker_failure(struct breaker *b, time_t now);
/* An allowed upload ended without telling anything about the storage. */
void breaker_release(struct breaker *b);
/* Seconds until an open breaker lets a trial through; 0 if not open. */
int breaker_wait_seconds(const struct breaker *b, time_t now);
const char *breaker_state_name(enum breaker_state s);
/* -1 for an unknown name. */
int breaker_state_from_name(const char *name);

#endif
