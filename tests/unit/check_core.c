/* check_core.c - runs the core unit suites. */
#include "config.h"

#include <stdlib.h>

#include "log.h"
#include "unit_suites.h"

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	/* Errors the code under test logs would only clutter the report. */
	log_open("check_core", LOG_TARGET_STDERR, LOG_CRIT);
	srunner_add_suite(sr, paths_suite());
	srunner_add_suite(sr, status_suite());
	srunner_add_suite(sr, manifest_suite());
	srunner_add_suite(sr, state_suite());
	srunner_add_suite(sr, breaker_suite());
	srunner_add_suite(sr, job_order_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
