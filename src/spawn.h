/* spawn.h - fork+exec of the helper programs with the fds, limits and
 * signal state a child must start with.
 */
#ifndef MAB_SPAWN_H
#define MAB_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

#define CHILD_CONFIG_FD 4

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
	pid_t *pgid;              /* in: group to join (0 = new); out: the group */
	const struct spawn_limits *limits;
};

/* Returns the child's pid, or -1 with errno.  The child gets: stdin, stdout,
 * the supervisor's stderr, status_fd as fd 3, config_fd as fd 4, nothing else; default signal
 * dispositions and an empty mask; RLIMIT_CORE 0 (a core file could hold the
 * account key); PR_SET_PDEATHSIG SIGTERM. */
pid_t spawn_child(const struct spawn_request *req);

/* Where the helper programs live: $MAB_LIBEXECDIR or PKGLIBEXECDIR. */
const char *helper_dir(void);

#endif
