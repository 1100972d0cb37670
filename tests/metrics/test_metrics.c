/* Unit tests of the metrics registry (metrics/metrics.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"

static void test_render(void **unused)
{
    metrics_registry *r = metrics_new("j");
    weir_metric *a, *b, *a2, *g, *h;
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "matches_total",
                                      "Matches.", "rules", 1, "rule", "x\"y",
                                      &a, NULL),
                     0);
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "matches_total",
                                      "Matches.", "rules", 0, "rule", "z", &b,
                                      NULL),
                     0);
    /* The same name, operator, subtask and label: the same metric. */
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "matches_total",
                                      "Matches.", "rules", 1, "rule", "x\"y",
                                      &a2, NULL),
                     0);
    assert_ptr_equal(a, a2);
    assert_int_equal(metrics_register(r, WEIR_METRIC_GAUGE, "depth",
                                      "Queue\ndepth.", NULL, 0, NULL, NULL, &g,
                                      NULL),
                     0);
    assert_int_equal(metrics_register(r, WEIR_METRIC_HISTOGRAM, "lat_seconds",
                                      "Latency.", "op", 0, NULL, NULL, &h,
                                      NULL),
                     0);
    metrics_counter_add(a, 2);
    metrics_counter_add(a2, 3);
    metrics_counter_add(b, 1);
    metrics_gauge_set(g, 2.5);
    metrics_histogram_observe(h, 0.003);
    metrics_histogram_observe(h, 0.2);
    metrics_histogram_observe(h, 100);
    assert_true(metrics_value(a) == 5.0);
    assert_true(metrics_value(g) == 2.5);
    assert_true(metrics_value(h) == 3.0);
    char *text = metrics_render(r);
    static const char want[] =
        "# HELP depth Queue\\ndepth.\n"
        "# TYPE depth gauge\n"
        "depth{job_name=\"j\"} 2.5\n"
        "# HELP lat_seconds Latency.\n"
        "# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"0."
        "005\"} 1\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"0."
        "01\"} 1\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"0."
        "025\"} 1\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"0."
        "05\"} 1\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"0.1\"}"
        " 1\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"0."
        "25\"} 2\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"0.5\"}"
        " 2\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"1\"} "
        "2\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"2.5\"}"
        " 2\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"5\"} "
        "2\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le="
        "\"10\"} "
        "2\n"
        "lat_seconds_bucket{job_name=\"j\",operator=\"op\",subtask=\"0\",le=\"+"
        "Inf\"} 3\n"
        "lat_seconds_sum{job_name=\"j\",operator=\"op\",subtask=\"0\"} "
        "100.203\n"
        "lat_seconds_count{job_name=\"j\",operator=\"op\",subtask=\"0\"} 3\n"
        "# HELP matches_total Matches.\n"
        "# TYPE matches_total counter\n"
        "matches_total{job_name=\"j\",operator=\"rules\",subtask=\"0\",rule="
        "\"z\"} "
        "1\n"
        "matches_total{job_name=\"j\",operator=\"rules\",subtask=\"1\",rule="
        "\"x\\\"y\"} 5\n";
    assert_string_equal(text, want);
    free(text);
    metrics_free(r);
}

static void test_refusals(void **unused)
{
    metrics_registry *r = metrics_new("j");
    weir_metric *m = NULL;
    char *err = NULL;
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "9lives", "",
                                      "op", 0, NULL, NULL, &m, &err),
                     WEIR_EINVAL);
    assert_string_equal(err,
                        "metric name '9lives' is not [a-zA-Z_:][a-zA-Z0-9_:]*");
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "a", "", "op", 0,
                                      "bad-label", "v", &m, &err),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "label name 'bad-label'"));
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "a", "", "op", 0,
                                      "subtask", "v", &m, &err),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "label 'subtask' is the host's"));
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "a", "", "op", 0,
                                      NULL, "v", &m, &err),
                     WEIR_EINVAL);
    assert_int_equal(metrics_register(r, WEIR_METRIC_COUNTER, "a", "", "op", 0,
                                      NULL, NULL, &m, &err),
                     0);
    assert_int_equal(metrics_register(r, WEIR_METRIC_GAUGE, "a", "", "op", 1,
                                      NULL, NULL, &m, &err),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "already registered with another kind"));
    free(err);
    metrics_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
