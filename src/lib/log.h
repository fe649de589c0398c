/* log.h - one logging path for the daemon and its helpers.
 *
 * Messages go to stderr (foreground, tools, tests), syslog, or a file of
 * the daemon's own, chosen at start.  With a file, the file also becomes
 * the process's stderr, so the helpers (which write to the stderr they
 * inherit) land in it too; with syslog, MAB_LOG_TARGET=syslog in the
 * environment sends the helpers there as well.  msg_fatal() is for a broken
 * environment: log and exit.  Nothing here may be called from a signal
 * handler.
 */
#ifndef MAB_LOG_H
#define MAB_LOG_H

#include <stdarg.h>
#include <syslog.h>

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG, LOG_TARGET_FILE };

#define LOG_TARGET_ENV "MAB_LOG_TARGET"

/* stderr or syslog.  A helper asked for stderr goes to syslog when
 * MAB_LOG_TARGET=syslog says its supervisor does. */
void log_open(const char *ident, enum log_target target, int max_priority);
/* Appends to path (made 0640 if missing) and makes it stderr too.  0, or
 * -1 with err; the previous target stays then. */
int log_open_file(const char *ident, const char *path, int max_priority, char *err,
		  size_t errlen);
/* After logrotate moved the file: opens path anew.  A no-op for the other
 * targets.  0, or -1 with err (the old file stays in use). */
int log_reopen(char *err, size_t errlen);
/* Whether a syslog daemon listens on /dev/log (Debian 12 installs none by
 * default, and then syslog(3) drops every line). */
bool log_syslog_listening(void);
enum log_target log_current_target(void);
/* The last warning or error this process logged ("" if none), its time
 * and priority. */
const char *log_last_problem(time_t *when, int *priority);
void log_set_level(int max_priority);
/* Parses "error", "warning", "notice", "info", "debug"; -1 if unknown. */
int log_level_from_name(const char *name);

void msg_log(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void msg_vlog(int priority, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define msg_error(...)   msg_log(LOG_ERR, __VA_ARGS__)
#define msg_warn(...)    msg_log(LOG_WARNING, __VA_ARGS__)
#define msg_notice(...)  msg_log(LOG_NOTICE, __VA_ARGS__)
#define msg_info(...)    msg_log(LOG_INFO, __VA_ARGS__)
#define msg_debug(...)   msg_log(LOG_DEBUG, __VA_ARGS__)

void msg_fatal(int exit_code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
