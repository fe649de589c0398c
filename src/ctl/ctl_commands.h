/* ctl_commands.h - the storage-side commands of mongo-azure-backupctl:
 * list, verify and restore.
 *
 * They talk to Azure (and, for restore, to a target MongoDB through the
 * import-collection helper) and need no daemon.  Each takes the
 * subcommand's argv as dispatch() hands it over (argv[0] is the program,
 * getopt's optind already reset) and the -c given to the tool, and returns
 * the tool's exit code: 0 done, 1 failed, 2 usage or configuration.
 */
#ifndef MAB_CTL_COMMANDS_H
#define MAB_CTL_COMMANDS_H

#include <stdbool.h>

int ctl_list(const char *conf_path, bool conf_explicit, int argc, char **argv);
int ctl_verify(const char *conf_path, bool conf_explicit, int argc, char **argv);
int ctl_restore(const char *conf_path, bool conf_explicit, int argc, char **argv);

#endif
