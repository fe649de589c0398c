/* hook.c - run a notification command without ever blocking on it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup_run.h"
#include "hook.h"
#include "run_as.h"
#include "log.h"

extern char **environ;

int hook_start(struct hook *h, const char *what, const char *command,
	       char *const extra_env[], int timeout_seconds, const struct run_as *run_as)
{
	size_t n_env = 0, n_extra = 0;
	char **envp;
	pid_t pid;

	while (environ[n_env] != NULL)
		n_env++;
	while (extra_env[n_extra] != NULL)
		n_extra++;
	/* Built before fork: malloc is not safe between fork and exec. */
	envp = calloc(n_env + n_extra + 1, sizeof(char *));
	if (envp == NULL)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n_extra; i++)
		envp[k++] = extra_env[i];
	for (size_t i = 0; i < n_env; i++) {
		if (strncmp(environ[i], "MAB_", 4) == 0)
			continue;
		envp[k++] = environ[i];
	}
	envp[k] = NULL;

	pid = fork();
	if (pid < 0) {
		int e = errno;
		free(envp);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		setpgid(0, 0);
		/* A hook never runs with more rights than the helpers. */
		if (run_as_apply(run_as) != 0)
			_exit(126);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0 && devnull != STDIN_FILENO) {
			dup2(devnull, STDIN_FILENO);
			close(devnull);
		}
		char *argv[] = { "sh", "-c", (char *)command, NULL };
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	free(envp);
	setpgid(pid, pid);
	h->pid = pid;
	h->killed = false;
	h->deadline = monotonic_seconds() + timeout_seconds;
	snprintf(h->what, sizeof(h->what), "%s", what);
	msg_info("notify: %s hook started (pid %ld)", what, (long)pid);
	return 0;
}

bool hook_reaped(struct hook *h, pid_t pid, int wait_status)
{
	if (h->pid <= 0 || h->pid != pid)
		return false;
	h->pid = 0;
	/* Anything left in its group (a backgrounded grandchild) goes too. */
	kill(-pid, SIGKILL);
	if (h->killed)
		msg_warn("notify: %s hook was killed after its timeout", h->what);
	else if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
		msg_info("notify: %s hook finished", h->what);
	else if (WIFEXITED(wait_status))
		msg_warn("notify: %s hook failed with exit status %d", h->what,
			 WEXITSTATUS(wait_status));
	else if (WIFSIGNALED(wait_status))
		msg_warn("notify: %s hook was killed by signal %d", h->what,
			 WTERMSIG(wait_status));
	return true;
}

void hook_check(struct hook *h, double now)
{
	if (h->pid <= 0 || h->killed || now < h->deadline)
		return;
	h->killed = true;
	msg_warn("notify: %s hook (pid %ld) ran past its timeout; killing it",
		 h->what, (long)h->pid);
	if (kill(-h->pid, SIGKILL) != 0)
		kill(h->pid, SIGKILL);
}

int hook_timeout_ms(const struct hook *h, double now)
{
	if (h->pid <= 0 || h->killed)
		return -1;
	double left = h->deadline - now;
	return left <= 0 ? 0 : (int)(left * 1000) + 1;
}
