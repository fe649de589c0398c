/* unit_suites.h - the check suites of check_core. */
#ifndef MAB_UNIT_SUITES_H
#define MAB_UNIT_SUITES_H

#include <check.h>

Suite *config_suite(void);
Suite *paths_suite(void);
Suite *status_suite(void);
Suite *manifest_suite(void);
Suite *state_suite(void);
Suite *breaker_suite(void);
Suite *job_order_suite(void);

#endif
