/* hook.h - [notify] on_success / on_failure: a shell command run with the
 * run's result in its environment, in its own process group, killed when it
 * overstays [notify] timeout.  The daemon never waits for a hook. */
#ifndef MAB_HOOK_H
#define MAB_HOOK_H

#include <stdbool.h>
#include <sys/types.h>

#define HOOK_MAX 8

struct hook {
	pid_t pid;              /* 0: slot free */
	double deadline;        /* monotonic seconds */
	bool killed;
	char what[16];          /* on_success / on_failure */
};

struct run_as;
/* Starts "/bin/sh -c command" as run_as (NULL: as we are) with the extra
 * NAME=value strings added to the environment.  0, or -1 with errno. */
int hook_start(struct hook *h, const char *what, const char *command,
	       char *const extra_env[], int timeout_seconds, const struct run_as *run_as);
/* true if pid was this hook's; logs how it ended. */
bool hook_reaped(struct hook *h, pid_t pid, int wait_status);
/* Kills an overdue hook's process group. */
void hook_check(struct hook *h, double now);
/* ms until the hook's deadline, -1 when not running. */
int hook_timeout_ms(const struct hook *h, double now);

#endif
