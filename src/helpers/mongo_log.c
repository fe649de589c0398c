/* mongo_log.c - libmongoc's process-wide side effects, tamed: its log
 * handler pointed at ours, and its counters file removed.
 *
 * libmongoc prints its own warnings (a missing /dev/shm, a server
 * selection retry) to stderr by default; with [log] target = syslog that
 * is nowhere an operator looks.  Its trace level is build-time noise and
 * dropped; every message carries its domain.
 */
#include "config.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "mongo_log.h"

static void handler(mongoc_log_level_t level, const char *domain, const char *message,
		    void *data)
{
	(void)data;
	switch (level) {
	case MONGOC_LOG_LEVEL_ERROR:
	case MONGOC_LOG_LEVEL_CRITICAL:
		msg_error("libmongoc %s: %s", domain, message);
		break;
	case MONGOC_LOG_LEVEL_WARNING:
		msg_warn("libmongoc %s: %s", domain, message);
		break;
	case MONGOC_LOG_LEVEL_MESSAGE:
	case MONGOC_LOG_LEVEL_INFO:
		msg_info("libmongoc %s: %s", domain, message);
		break;
	case MONGOC_LOG_LEVEL_DEBUG:
		msg_debug("libmongoc %s: %s", domain, message);
		break;
	case MONGOC_LOG_LEVEL_TRACE:
		break;
	}
}

void mongo_log_to_ours(void)
{
	mongoc_log_set_handler(handler, NULL);
}

void mongo_forget_counters_file(void)
{
	char name[32];

	snprintf(name, sizeof(name), "/mongoc-%ld", (long)getpid());
	/* ENOENT (MONGOC_DISABLE_SHM was set) is the usual answer. */
	(void)shm_unlink(name);
}
