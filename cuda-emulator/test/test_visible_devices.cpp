// CUDA_VISIBLE_DEVICES over CUDA_EMU_DEVICES physical devices, and each physical device's PCI bus
// id. The driver reads the variable once, at cuInit, so each case runs in a child process of its
// own (fork before this process ever calls cuInit) and the parent checks what it saw.
#include <sys/wait.h>

#include <functional>

#include "harness.h"

// What a fresh process with these settings saw: `body`'s text, then what the emulator printed.
struct Seen {
  std::string text;
  std::string err;
};

static Seen in_process(const char* physical, const char* visible, const std::function<std::string()>& body) {
  fflush(stdout);
  fflush(stderr);
  int pipe_fds[2];
  CHECK_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(pipe_fds[0]);
    setenv("CUDA_EMU_DEVICES", physical, 1);
    if (visible != nullptr) {
      setenv("CUDA_VISIBLE_DEVICES", visible, 1);
    } else {
      unsetenv("CUDA_VISIBLE_DEVICES");
    }
    std::string text, err;
    {
      harness::Stderr captured;
      try {
        text = body();
      } catch (const harness::Failure& f) {  // a CHECK in the child: the parent's comparison shows it
        text = "the child failed: " + f.message;
      }
      err = captured.text();
    }
    std::string message = text + '\0' + err;
    for (size_t done = 0; done < message.size();) {
      ssize_t n = write(pipe_fds[1], message.data() + done, message.size() - done);
      if (n <= 0) _exit(2);
      done += (size_t)n;
    }
    _exit(0);  // no exit handlers: the child shares the parent's stdio buffers and test registry
  }
  close(pipe_fds[1]);
  std::string message;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0) message.append(buffer, (size_t)n);
  close(pipe_fds[0]);
  int status = 0;
  CHECK_EQ(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  size_t split = message.find('\0');
  CHECK(split != std::string::npos);
  return {message.substr(0, split), message.substr(split + 1)};
}

// cuInit's result, then each visible ordinal's PCI bus id string and bus attribute:
// "CUDA_SUCCESS 0000:03:00.0/3 0000:01:00.0/1".
static std::string devices_seen() {
  std::string seen = harness::result_name(cuInit(0));
  int count = 0;
  CUresult rc = cuDeviceGetCount(&count);
  if (rc != CUDA_SUCCESS) return seen + " count:" + harness::result_name(rc);
  for (int ordinal = 0; ordinal < count; ordinal++) {
    CUdevice dev = -1;
    char bus_id[32] = "unset";
    int bus = -1;
    if (cuDeviceGet(&dev, ordinal) != CUDA_SUCCESS || cuDeviceGetPCIBusId(bus_id, sizeof bus_id, dev) != CUDA_SUCCESS ||
        cuDeviceGetAttribute(&bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, dev) != CUDA_SUCCESS) {
      return seen + " ordinal " + std::to_string(ordinal) + " failed";
    }
    seen += " " + std::string(bus_id) + "/" + std::to_string(bus);
  }
  // One past the last visible ordinal is not a device, whatever the physical count.
  CUdevice past = -1;
  if (cuDeviceGet(&past, count) != CUDA_ERROR_INVALID_DEVICE) seen += " (ordinal " + std::to_string(count) + " exists)";
  return seen;
}

TEST(unset_shows_every_physical_device_in_order_with_its_own_bus_id) {
  CHECK_EQ(in_process("3", nullptr, devices_seen).text, "CUDA_SUCCESS 0000:01:00.0/1 0000:02:00.0/2 0000:03:00.0/3");
  CHECK_EQ(in_process("1", nullptr, devices_seen).text, "CUDA_SUCCESS 0000:01:00.0/1");
}

TEST(the_list_picks_physical_devices_and_orders_them) {
  CHECK_EQ(in_process("3", "2,0", devices_seen).text, "CUDA_SUCCESS 0000:03:00.0/3 0000:01:00.0/1");
  CHECK_EQ(in_process("2", "1", devices_seen).text, "CUDA_SUCCESS 0000:02:00.0/2");
  CHECK_EQ(in_process("2", "1,0", devices_seen).text, "CUDA_SUCCESS 0000:02:00.0/2 0000:01:00.0/1");
  // Entries are read as strtoul reads them: leading blanks skipped, what follows the digits ignored.
  CHECK_EQ(in_process("3", " 2 ,1gpu", devices_seen).text, "CUDA_SUCCESS 0000:03:00.0/3 0000:02:00.0/2");
  CHECK_EQ(in_process("16", "15", devices_seen).text, "CUDA_SUCCESS 0000:10:00.0/16");
}

TEST(the_list_ends_at_the_first_entry_that_is_no_device_index) {
  Seen negative = in_process("3", "0,2,-1,1", devices_seen);  // NVIDIA's documented example
  CHECK_EQ(negative.text, "CUDA_SUCCESS 0000:01:00.0/1 0000:03:00.0/3");
  CHECK_CONTAINS(negative.err, "CUDA_VISIBLE_DEVICES=0,2,-1,1: entry 2 (\"-1\") is not a device index in [0, 3)");
  Seen past_the_end = in_process("2", "1,2,0", devices_seen);
  CHECK_EQ(past_the_end.text, "CUDA_SUCCESS 0000:02:00.0/2");
  CHECK_CONTAINS(past_the_end.err, "entry 1 (\"2\") is not a device index in [0, 2)");
  CHECK_EQ(in_process("2", "1,gpu0,0", devices_seen).text, "CUDA_SUCCESS 0000:02:00.0/2");
  CHECK_EQ(in_process("2", "0,,1", devices_seen).text, "CUDA_SUCCESS 0000:01:00.0/1");
}

TEST(no_visible_device_fails_cuInit_with_no_device_every_time) {
  for (const char* visible : {"", "-1", "2", "x", "GPU-6f1c2b1e", "0,1,0"}) {
    Seen none = in_process("2", visible, [] {
      std::string seen = devices_seen();
      int count = -1;
      seen += " again:" + harness::result_name(cuInit(0));
      seen += " count:" + harness::result_name(cuDeviceGetCount(&count));
      return seen;
    });
    CHECK_EQ(none.text, "CUDA_ERROR_NO_DEVICE count:CUDA_ERROR_NOT_INITIALIZED again:CUDA_ERROR_NO_DEVICE "
                        "count:CUDA_ERROR_NOT_INITIALIZED");
    CHECK_CONTAINS(none.err, "leaves none of the 2 device(s) visible");
  }
  CHECK_CONTAINS(in_process("2", "0,1,0", devices_seen).err, "device 0 is listed twice: no device is visible");
}

TEST(the_variable_is_read_once_at_cuInit) {
  Seen seen = in_process("2", "1", [] {
    std::string first = devices_seen();
    setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
    return first + " | " + devices_seen();
  });
  CHECK_EQ(seen.text, "CUDA_SUCCESS 0000:02:00.0/2 | CUDA_SUCCESS 0000:02:00.0/2");
}

TEST(contexts_and_memory_belong_to_visible_ordinals) {
  Seen seen = in_process("2", "1,0", [] {
    Device second(1);
    CUdeviceptr p = 0;
    CHECK_CU(cuMemAlloc_v2(&p, 4096), CUDA_SUCCESS);
    CUdevice current = -1;
    CHECK_CU(cuCtxGetDevice(&current), CUDA_SUCCESS);
    char bus_id[16] = "";
    CHECK_CU(cuDeviceGetPCIBusId(bus_id, sizeof bus_id, current), CUDA_SUCCESS);
    std::string text = std::to_string(current) + " " + bus_id + " " + std::to_string(cuEmulatorLiveObjects(1, "allocated_bytes")) +
                       " " + std::to_string(cuEmulatorLiveObjects(0, "allocated_bytes")) + " " +
                       std::to_string(cuEmulatorLiveObjects(2, "allocated_bytes"));
    CHECK_CU(cuMemFree_v2(p), CUDA_SUCCESS);
    return text;
  });
  // Ordinal 1 is physical device 0; the process knows only ordinals, and there is no ordinal 2.
  CHECK_EQ(seen.text, "1 0000:01:00.0 4096 0 -1");
}

TEST(pci_bus_id_arguments_are_checked) {
  Seen seen = in_process("2", nullptr, [] {
    char bus_id[16];
    std::string text = harness::result_name(cuDeviceGetPCIBusId(bus_id, sizeof bus_id, 0));  // before cuInit
    cuInit(0);
    text += " " + harness::result_name(cuDeviceGetPCIBusId(nullptr, 13, 0));
    text += " " + harness::result_name(cuDeviceGetPCIBusId(bus_id, 0, 0));
    text += " " + harness::result_name(cuDeviceGetPCIBusId(bus_id, sizeof bus_id, 2));
    text += " " + harness::result_name(cuDeviceGetPCIBusId(bus_id, sizeof bus_id, -1));
    // 13 bytes hold the id and its NUL, as CUDA documents; a shorter buffer gets what fits.
    memset(bus_id, 'x', sizeof bus_id);
    text += " " + harness::result_name(cuDeviceGetPCIBusId(bus_id, 13, 1)) + " " + bus_id;
    text += " " + harness::result_name(cuDeviceGetPCIBusId(bus_id, 8, 1)) + " " + bus_id;
    return text;
  });
  CHECK_EQ(seen.text, "CUDA_ERROR_NOT_INITIALIZED CUDA_ERROR_INVALID_VALUE CUDA_ERROR_INVALID_VALUE CUDA_ERROR_INVALID_DEVICE "
                      "CUDA_ERROR_INVALID_DEVICE CUDA_SUCCESS 0000:02:00.0 CUDA_SUCCESS 0000:02");
  CHECK_CONTAINS(seen.err, "cuDeviceGetPCIBusId: device 2 does not exist (2 visible of CUDA_EMU_DEVICES=2)");
}
