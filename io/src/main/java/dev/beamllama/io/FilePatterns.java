package dev.beamllama.io;

import java.nio.file.Files;
import java.nio.file.Path;

/** What a user may give as input: a file, a glob, a remote pattern, or a local directory. */
final class FilePatterns {
  private FilePatterns() {}

  /**
   * A local directory becomes a glob over what it holds ({@code *}: its files, {@code **}: every
   * file below it); anything else is returned as given.
   */
  static String expandDirectory(String pattern, String glob) {
    if (!pattern.contains("://") && !pattern.contains("*") && Files.isDirectory(Path.of(pattern))) {
      return Path.of(pattern).resolve(glob).toString();
    }
    return pattern;
  }
}
