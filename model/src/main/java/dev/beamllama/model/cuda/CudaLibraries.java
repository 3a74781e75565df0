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
 * with the NVIDIA driver) and cuBLAS (with the CUDA toolkit, often not on the loader's path). Looks
 * in {@code CUDA_HOME}, {@code LD_LIBRARY_PATH} and the standard install directories, and says
 * everywhere it looked when a library is missing.
 */
final class CudaLibraries {
  /** cuBLAS sonames, newest first. */
  private static final List<String> CUBLAS_VERSIONS = List.of("13", "12");

  /** Where each library was found, for gpu-check's environment line. */
  private static volatile String driverPath = "not loaded";
  private static volatile String cublasPath = "not loaded";

  private CudaLibraries() {}

  static String driverPath() {
    return driverPath;
  }

  static String cublasPath() {
    return cublasPath;
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

  /** cuBLAS, with cuBLASLt loaded first from the same directory (cuBLAS needs it). */
  static SymbolLookup cublas(Arena arena) {
    List<String> tried = new ArrayList<>();
    for (String version : CUBLAS_VERSIONS) {
      for (Path dir : searchDirectories()) {
        Path cublas = dir.resolve("libcublas.so." + version);
        tried.add(cublas.toString());
        if (Files.exists(cublas)) {
          Path lt = dir.resolve("libcublasLt.so." + version);
          if (Files.exists(lt)) {
            SymbolLookup.libraryLookup(lt, arena);
          }
          cublasPath = cublas.toString();
          return SymbolLookup.libraryLookup(cublas, arena);
        }
      }
      try {
        SymbolLookup lookup = SymbolLookup.libraryLookup("libcublas.so." + version, arena);
        cublasPath = "libcublas.so." + version + " on the loader's path";
        return lookup;
      } catch (IllegalArgumentException e) {
        tried.add("libcublas.so." + version + " (the loader's path)");
      }
    }
    throw new CudaUnavailableException("cuBLAS not found (tried " + String.join(", ", tried)
        + "); install the CUDA toolkit's cuBLAS and set CUDA_HOME or LD_LIBRARY_PATH to its lib directory");
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
