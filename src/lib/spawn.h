/* spawn.h - fork+exec of the helper programs with the fds, limits and
 * signal state a child must start with.
 */
#ifndef MAB_SPAWN_H
#define MAB_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

#define CHILD_CONFIG_FD 4
/* The secrets the supervisor read for the run (config_secrets_encode), and
 * the variable that tells the child where they are. */
#define CHILD_SECRETS_FD 5
#define CHILD_SECRETS_ENV "MAB_SECRETS_FD"

struct run_as;

struct spawn_limits {
	uint64_t address_space;   /* RLIMIT_AS bytes, 0 = leave alone */
	int cpu_seconds;          /* RLIMIT_CPU, 0 = leave alone */
	int open_files;           /* RLIMIT_NOFILE, 0 = leave alone */
};

struct spawn_request {
	const char *path;         /* program to exec */
	char *const *argv;
	int stdin_fd;             /* -1: /dev/null */
	int stdout_fd;            /* -1: /dev/null */
	int status_fd;            /* becomes fd 3; -1: none */
	int config_fd;            /* becomes fd 4 (the run's config text); -1: none */
	int secrets_fd;           /* > 2: becomes fd 5, with MAB_SECRETS_FD=5; else none */
	const struct run_as *run_as;  /* NULL or inactive: the caller's identity */
	pid_t *pgid;              /* in: group to join (0 = new); out: the group */
	const struct spawn_limits *limits;
};

/* Returns the child's pid, or -1 with errno.  The child gets: stdin, stdout,
 * the supervisor's stderr, status_fd as fd 3, config_fd as fd 4, secrets_fd
 * as fd 5, nothing else; the run_as identity; default signal dispositions
 * and an empty mask; RLIMIT_CORE 0 (a core file could hold the account
 * key); PR_SET_PDEATHSIG SIGTERM. */
pid_t spawn_child(const struct spawn_request *req);

/* Where the helper programs live: $MAB_LIBEXECDIR or PKGLIBEXECDIR. */
const char *helper_dir(void);

#endif
