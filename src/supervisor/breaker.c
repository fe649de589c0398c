/* breaker.c - the storage circuit breaker's state machine. */
#include "config.h"

#include <string.h>

#include "breaker.h"
#include "log.h"

static const char *const state_names[] = { "closed", "open", "half-open" };

const char *breaker_state_name(enum breaker_state s)
{
	return (unsigned)s < 3 ? state_names[s] : "unknown";
}

int breaker_state_from_name(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

void breaker_init(struct breaker *b, int threshold, int open_seconds)
{
	memset(b, 0, sizeof(*b));
	b->state = BREAKER_CLOSED;
	b->threshold = threshold;
	b->open_seconds = open_seconds;
}

static void change(struct breaker *b, enum breaker_state to)
{
	if (b->state == to)
		return;
	b->state = to;
	b->transitions++;
	if (b->on_change != NULL)
		b->on_change(b->ctx);
}

bool breaker_allow(struct breaker *b, time_t now)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now < b->opened_at + b->open_seconds)
			return false;
		msg_notice("breaker: half-open after %d s: one trial upload", b->open_seconds);
		b->trial_in_flight = false;
		change(b, BREAKER_HALF_OPEN);
		/* fall through */
	case BREAKER_HALF_OPEN:
		if (b->trial_in_flight)
			return false;
		b->trial_in_flight = true;
		return true;
	}
	return false;
}

void breaker_success(struct breaker *b)
{
	b->failures = 0;
	b->trial_in_flight = false;
	if (b->state != BREAKER_CLOSED) {
		msg_notice("breaker: closed: the storage answered again");
		change(b, BREAKER_CLOSED);
	}
}

void breaker_failure(struct breaker *b, time_t now)
{
	b->failures++;
	b->trial_in_flight = false;
	if (b->state == BREAKER_HALF_OPEN ||
	    (b->state == BREAKER_CLOSED && b->failures >= b->threshold)) {
		b->opened_at = now;
		msg_warn("breaker: open after %d consecutive failed storage operation%s; "
			 "uploads wait %d s", b->failures, b->failures == 1 ? "" : "s",
			 b->open_seconds);
		change(b, BREAKER_OPEN);
	} else if (b->state == BREAKER_OPEN) {
		/* A straggler that was already running: keep the clock fresh. */
		b->opened_at = now;
	} else if (b->on_change != NULL) {
		b->on_change(b->ctx);
	}
}

void breaker_release(struct breaker *b)
{
	b->trial_in_flight = false;
}

int breaker_wait_seconds(const struct breaker *b, time_t now)
{
	if (b->state != BREAKER_OPEN)
		return 0;
	time_t left = b->opened_at + b->open_seconds - now;
	return left > 0 ? (int)left : 0;
}
