/* A fake libnvidia-ml.so.1 for sonde's tests: one or two GPUs with fixed figures, following
 * NVML's documented calling conventions (return codes, the NULL-buffer size queries of
 * nvmlDeviceGetSamples and nvmlDeviceGetProcessUtilization). FAKE_NVML_DEVICES sets the device
 * count (default 1; 0 = a node without GPUs); FAKE_NVML_PID names the process the fake reports
 * GPU utilisation for; FAKE_NVML_INIT_FAIL makes nvmlInit fail (driver not loaded). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

typedef int nvmlReturn_t;
typedef struct { int index; } *nvmlDevice_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef union { double d; unsigned int ui; unsigned long ul; unsigned long long ull; long long sll; int si; } nvmlValue_t;
typedef struct { unsigned long long timeStamp; nvmlValue_t sampleValue; } nvmlSample_t;
typedef struct { unsigned int pid; unsigned long long timeStamp; unsigned int smUtil, memUtil, encUtil, decUtil; } nvmlProcessUtilizationSample_t;

static struct { int index; } devs[2] = {{0}, {1}};
static int inited;

static int count(void) { const char *e = getenv("FAKE_NVML_DEVICES"); return e ? atoi(e) : 1; }

nvmlReturn_t nvmlInit_v2(void) { if (getenv("FAKE_NVML_INIT_FAIL")) return 9; /* DRIVER_NOT_LOADED */ inited = 1; return 0; }
nvmlReturn_t nvmlShutdown(void) { inited = 0; return 0; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) { if (!inited) return 1; *n = count(); return 0; }
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
    if (i >= (unsigned)count() || i > 1) return 2; /* INVALID_ARGUMENT */
    *d = (nvmlDevice_t)&devs[i]; return 0;
}
static nvmlReturn_t str(char *buf, unsigned int len, const char *s) {
    if (strlen(s) + 1 > len) return 7; /* INSUFFICIENT_SIZE */
    strcpy(buf, s); return 0;
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len) {
    char s[64]; snprintf(s, sizeof s, "GPU-fake-%d", d->index); return str(buf, len, s);
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len) { (void)d; return str(buf, len, "Fake Tesla T4"); }
nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len) { return str(buf, len, "535.104.05"); }
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    m->total = 16ULL << 30; m->used = (1ULL << 30) * (d->index + 1); m->free = m->total - m->used; return 0;
}
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) { if (sensor != 0) return 2; *t = 55 + d->index; return 0; }
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) { (void)d; *mw = 70500; return 0; }
/* Three samples after lastSeen: GPU 10, 40, 70 % (avg 40, peak 70); memory 5, 15, 25 % (as
 * unsigned int). Timestamps are lastSeen+1..3 so every scrape gets fresh samples. */
nvmlReturn_t nvmlDeviceGetSamples(nvmlDevice_t d, int type, unsigned long long last, int *vt, unsigned int *n, nvmlSample_t *s) {
    (void)d;
    if (type != 1 && type != 2) return 3; /* NOT_SUPPORTED */
    if (!s) { *n = 3; return 0; }
    if (*n < 3) return 7;
    *vt = 1; *n = 3;
    for (int i = 0; i < 3; i++) {
        s[i].timeStamp = last + i + 1;
        s[i].sampleValue.ull = 0;
        s[i].sampleValue.ui = type == 1 ? 10 + 30 * i : 5 + 10 * i;
    }
    return 0;
}
/* One process sample per call on device 0: FAKE_NVML_PID at 42 % SM and 17 % memory. */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t d, nvmlProcessUtilizationSample_t *u, unsigned int *n, unsigned long long last) {
    const char *pid = getenv("FAKE_NVML_PID");
    if (d->index != 0 || !pid) { *n = 0; return 6; /* NOT_FOUND: no samples */ }
    if (!u) { *n = 1; return 7; }
    if (*n < 1) return 7;
    *n = 1;
    u[0].pid = (unsigned)atoi(pid); u[0].timeStamp = last + 1; u[0].smUtil = 42; u[0].memUtil = 17; u[0].encUtil = 0; u[0].decUtil = 0;
    return 0;
}
