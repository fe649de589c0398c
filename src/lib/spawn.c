/* spawn.c - start a helper program as a clean, limited child.
 *
 * Between fork and exec only async-signal-safe calls are made; a failure
 * there is reported to the parent through a CLOEXEC pipe (the errno and the
 * step), so spawn_child() either returns a running exec'd child or an error,
 * never a half-started process.
 */
#include "config.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child_status.h"
#include "run_as.h"
#include "spawn.h"
#include "xio.h"

/* AddressSanitizer reserves terabytes of address space for its shadow
 * memory, so a sanitized helper cannot start under RLIMIT_AS: a sanitizer
 * build (tools/test.sh's build-asan) leaves that one limit out. */
#if defined(__SANITIZE_ADDRESS__)
#define MAB_NO_RLIMIT_AS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MAB_NO_RLIMIT_AS 1
#endif
#endif

#ifndef PKGLIBEXECDIR
#define PKGLIBEXECDIR "/usr/local/libexec/mongo-azure-backup"
#endif

const char *helper_dir(void)
{
	const char *dir = getenv("MAB_LIBEXECDIR");

	return dir != NULL && *dir != '\0' ? dir : PKGLIBEXECDIR;
}

extern char **environ;

/* Our environment for the child, less any MAB_SECRETS_FD, plus ours when
 * the child gets secrets, plus MONGOC_DISABLE_SHM: libmongoc's statistics
 * counters would otherwise live in a /dev/shm/mongoc-PID file made at
 * load and removed only at a clean exit, so every helper killed (cancel,
 * SIGKILL escalation, the OOM killer) would leave one behind; and where
 * /dev/shm is missing it warns on stderr before any log is set up.
 * Built before fork: malloc is not safe after. */
static char **child_environment(bool with_secrets)
{
	static char secrets_var[] = CHILD_SECRETS_ENV "=5";
	static char no_shm_var[] = "MONGOC_DISABLE_SHM=1";
	size_t n = 0, k = 0, name_len = strlen(CHILD_SECRETS_ENV);
	char **envp;

	while (environ[n] != NULL)
		n++;
	envp = calloc(n + 3, sizeof(char *));
	if (envp == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((strncmp(environ[i], CHILD_SECRETS_ENV, name_len) != 0 ||
		     environ[i][name_len] != '=') &&
		    strncmp(environ[i], "MONGOC_DISABLE_SHM=", 19) != 0)
			envp[k++] = environ[i];
	envp[k++] = no_shm_var;
	if (with_secrets)
		envp[k++] = secrets_var;
	envp[k] = NULL;
	return envp;
}

/* Marks every fd from 'from' up close-on-exec: only 0-5 reach the program. */
static void cloexec_from(int from)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)from, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = from; fd < max; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void set_limit(int resource, rlim_t value)
{
	struct rlimit rl = { value, value };
	struct rlimit cur;

	/* Never raise a hard limit we were given; that would fail anyway. */
	if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    value > cur.rlim_max)
		rl.rlim_cur = rl.rlim_max = cur.rlim_max;
	setrlimit(resource, &rl);
}

static void child_fail(int report_fd, int step)
{
	int report[2] = { step, errno };

	if (write(report_fd, report, sizeof(report)) < 0)
		_exit(127);
	_exit(127);
}

pid_t spawn_child(const struct spawn_request *req)
{
	int report[2];
	pid_t pid;
	pid_t parent = getpid();

	bool with_secrets = req->secrets_fd > 2;
	char **envp = child_environment(with_secrets);

	if (envp == NULL)
		return -1;
	if (pipe2(report, O_CLOEXEC) != 0) {
		free(envp);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(report[0]);
		close(report[1]);
		free(envp);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		int devnull = -1;

		/* Own process group, shared by the run's children, so a cancel or
		 * timeout can signal them all at once. */
		if (req->pgid != NULL && setpgid(0, *req->pgid) != 0 && *req->pgid != 0)
			setpgid(0, 0);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* The identity first: a change of credentials clears the
		 * parent-death signal. */
		if (run_as_apply(req->run_as) != 0)
			child_fail(report[1], 5);
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
			child_fail(report[1], 1);
		if (getppid() != parent)
			_exit(CHILD_EXIT_PEER_GONE);

		/* Move the fds out of the way of 0-5 before placing them. */
		int fds[5] = { req->stdin_fd, req->stdout_fd, req->status_fd, req->config_fd,
			       with_secrets ? req->secrets_fd : -1 };
		for (int i = 0; i < 5; i++) {
			if (fds[i] < 0 || fds[i] > 10)
				continue;
			int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 11);
			if (moved < 0)
				child_fail(report[1], 2);
			fds[i] = moved;
		}
		if (report[1] <= 10) {
			int moved = fcntl(report[1], F_DUPFD_CLOEXEC, 11);
			if (moved < 0)
				child_fail(report[1], 2);
			report[1] = moved;
		}
		if (fds[0] < 0 || fds[1] < 0) {
			devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (devnull < 0)
				child_fail(report[1], 3);
		}
		if (dup2(fds[0] >= 0 ? fds[0] : devnull, STDIN_FILENO) < 0 ||
		    dup2(fds[1] >= 0 ? fds[1] : devnull, STDOUT_FILENO) < 0)
			child_fail(report[1], 4);
		if (fds[2] >= 0) {
			if (dup2(fds[2], CHILD_STATUS_FD) < 0)
				child_fail(report[1], 4);
		} else {
			close(CHILD_STATUS_FD);
		}
		if (fds[3] >= 0) {
			if (dup2(fds[3], CHILD_CONFIG_FD) < 0)
				child_fail(report[1], 4);
		} else {
			close(CHILD_CONFIG_FD);
		}
		if (fds[4] >= 0) {
			if (dup2(fds[4], CHILD_SECRETS_FD) < 0)
				child_fail(report[1], 4);
		} else {
			close(CHILD_SECRETS_FD);
		}
		/* Everything above fd 5 goes at exec, the report pipe included. */
		cloexec_from(CHILD_SECRETS_FD + 1);

		if (req->limits != NULL) {
			set_limit(RLIMIT_CORE, 0);
#ifndef MAB_NO_RLIMIT_AS
			if (req->limits->address_space > 0)
				set_limit(RLIMIT_AS, (rlim_t)req->limits->address_space);
#endif
			if (req->limits->cpu_seconds > 0)
				set_limit(RLIMIT_CPU, (rlim_t)req->limits->cpu_seconds);
			if (req->limits->open_files > 0)
				set_limit(RLIMIT_NOFILE, (rlim_t)req->limits->open_files);
		}
		execve(req->path, req->argv, envp);
		child_fail(report[1], 6);
	}

	free(envp);
	close(report[1]);
	int child_report[2];
	ssize_t n = xread_full(report[0], child_report, sizeof(child_report));
	close(report[0]);
	if (n == (ssize_t)sizeof(child_report)) {
		/* The exec failed: collect the child and hand back its errno. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = child_report[1];
		return -1;
	}
	if (req->pgid != NULL) {
		/* Also from the parent, so the group exists before we return. */
		if (setpgid(pid, *req->pgid) != 0 && *req->pgid != 0)
			setpgid(pid, pid);
		pid_t got = getpgid(pid);
		if (got > 0)
			*req->pgid = got;
	}
	return pid;
}
