package dev.beamllama.model.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Finds the CUDA libraries the engine calls through FFM: the driver ({@code libcuda.so.1}, installed
 * with the NVIDIA driver), cuBLASLt and cuBLAS (with the CUDA toolkit, often not on the loader's path). Looks
 * in {@code CUDA_HOME}, {@code LD_LIBRARY_PATH} and the standard install directories, and says
 * everywhere it looked when a library is missing.
 */
final class CudaLibraries {
  /** cuBLAS and cuBLASLt sonames, newest first. */
  private static final List<String> CUBLAS_VERSIONS = List.of("13", "12");

  /** Where each library was found, for gpu-check's environment line. */
  private static volatile String driverPath = "not loaded";
  private static volatile String cublasPath = "not loaded";
  private static volatile String cublasLtPath = "not loaded";

  private CudaLibraries() {}

  static String driverPath() {
    return driverPath;
  }

  static String cublasPath() {
    return cublasPath;
  }

  static String cublasLtPath() {
    return cublasLtPath;
  }

  static SymbolLookup driver(Arena arena) {
    List<String> tried = new ArrayList<>();
    try {
      SymbolLookup lookup = SymbolLookup.libraryLookup("libcuda.so.1", arena);
      driverPath = "libcuda.so.1 on the loader's path (LD_LIBRARY_PATH=" + System.getenv("LD_LIBRARY_PATH") + ")";
      return lookup;
    } catch (IllegalArgumentException e) {
      tried.add("libcuda.so.1 (the loader's path)");
    }
    for (String dir : List.of("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/cuda/compat", "/usr/lib/wsl/lib")) {
      Path candidate = Path.of(dir, "libcuda.so.1");
      tried.add(candidate.toString());
      if (Files.exists(candidate)) {
        driverPath = candidate.toString();
        return SymbolLookup.libraryLookup(candidate, arena);
      }
    }
    throw new CudaUnavailableException("no NVIDIA driver library: libcuda.so.1 not found (tried " + String.join(", ", tried)
        + "); install the NVIDIA driver");
  }

  /** cuBLAS (the GEMM checks of gpu-check compare against its own choice of algorithm). */
  static SymbolLookup cublas(Arena arena) {
    Found found = toolkitLibrary("libcublas", "cuBLAS", arena);
    cublasPath = found.path();
    return found.lookup();
  }

  /** cuBLASLt, the engine's GEMMs. */
  static SymbolLookup cublasLt(Arena arena) {
    Found found = toolkitLibrary("libcublasLt", "cuBLASLt", arena);
    cublasLtPath = found.path();
    return found.lookup();
  }

  private record Found(SymbolLookup lookup, String path) {}

  /** A CUDA toolkit library ({@code base.so.13}, else {@code .12}) from the search directories, else the loader's path. */
  private static Found toolkitLibrary(String base, String what, Arena arena) {
    List<String> tried = new ArrayList<>();
    for (String version : CUBLAS_VERSIONS) {
      for (Path dir : searchDirectories()) {
        Path library = dir.resolve(base + ".so." + version);
        tried.add(library.toString());
        if (Files.exists(library)) {
          return new Found(SymbolLookup.libraryLookup(library, arena), library.toString());
        }
      }
      try {
        return new Found(SymbolLookup.libraryLookup(base + ".so." + version, arena), base + ".so." + version + " on the loader's path");
      } catch (IllegalArgumentException e) {
        tried.add(base + ".so." + version + " (the loader's path)");
      }
    }
    throw new CudaUnavailableException(what + " not found (tried " + String.join(", ", tried) + "); install the CUDA toolkit's "
        + what + " and set CUDA_HOME or LD_LIBRARY_PATH to its lib directory");
  }

  private static List<Path> searchDirectories() {
    Set<Path> dirs = new LinkedHashSet<>();
    String cudaHome = System.getenv("CUDA_HOME");
    if (cudaHome != null && !cudaHome.isBlank()) {
      dirs.add(Path.of(cudaHome, "lib64"));
      dirs.add(Path.of(cudaHome, "targets", "x86_64-linux", "lib"));
      dirs.add(Path.of(cudaHome, "lib"));
    }
    String ldPath = System.getenv("LD_LIBRARY_PATH");
    if (ldPath != null) {
      for (String entry : ldPath.split(":")) {
        if (!entry.isBlank()) {
          dirs.add(Path.of(entry));
        }
      }
    }
    dirs.add(Path.of("/usr/local/cuda/lib64"));
    dirs.add(Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
    try (Stream<Path> installs = Files.list(Path.of("/usr/local"))) {
      installs.filter(p -> p.getFileName().toString().startsWith("cuda-")).sorted((a, b) -> b.compareTo(a))
          .forEach(p -> dirs.add(p.resolve("targets/x86_64-linux/lib")));
    } catch (Exception e) {
      // no /usr/local listing: nothing to add
    }
    dirs.add(Path.of("/usr/lib/x86_64-linux-gnu"));
    return List.copyOf(dirs);
  }
}
