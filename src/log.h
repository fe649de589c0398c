/* log.h - one logging path for the daemon and its helpers.
 *
 * Messages go to stderr (foreground, tools, tests) or syslog (service), chosen
 * once at start.  msg_fatal() is for a broken environment: log and exit.
 * Nothing here may be called from a signal handler.
 */
#ifndef MAB_LOG_H
#define MAB_LOG_H

#include <stdarg.h>
#include <syslog.h>

enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG };

void log_open(const char *ident, enum log_target target, int max_priority);
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
