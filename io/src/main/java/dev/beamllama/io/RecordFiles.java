package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.OptionalLong;
import java.util.function.Consumer;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.fs.EmptyMatchTreatment;
import org.apache.beam.sdk.io.fs.MatchResult;
import org.apache.beam.sdk.io.fs.ResourceId;

/**
 * Record files read outside a pipeline, by the job's launcher: counting the input records before the
 * job reads them (for a progress total), and reading back the shards a finished job wrote (for its
 * report). Both go through Beam's file systems, globs and compression as the pipeline's readers do.
 */
public final class RecordFiles {
  private RecordFiles() {}

  /**
   * The local files {@code filepattern} stands for, matched as the job's readers match it (a
   * directory stands for {@code directoryGlob} under it: {@code *} its files for the input,
   * {@code **} every file below it for a resume source), or null for a remote pattern, which only
   * the runner's file systems can match.
   */
  public static List<Path> localMatches(String filepattern, String directoryGlob) {
    String pattern = FilePatterns.expandDirectory(filepattern, directoryGlob);
    if (isRemote(pattern)) {
      return null;
    }
    try {
      return FileSystems.match(pattern, EmptyMatchTreatment.ALLOW).metadata().stream()
          .map(m -> Path.of(m.resourceId().toString()).toAbsolutePath().normalize()).toList();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + filepattern + ": " + e.getMessage(), e);
    }
  }

  private static boolean isRemote(String pattern) {
    return pattern.contains("://") && !pattern.toLowerCase(Locale.ROOT).startsWith("file://");
  }

  /**
   * The number of records {@link PromptIO#read()} will count for these local files (its
   * {@code records_read}), or empty for a remote pattern, where a second pass over the input is not
   * cheap, or a pattern that matches nothing. Mirrors the reader: every non-blank line and every
   * line it refuses, every Parquet row (from the footer, nothing decoded), and a file that cannot
   * be read past some point counts what was read before it plus one for the rest.
   */
  public static OptionalLong countPromptRecords(String filepattern, RecordFormat format, long maxLineBytes) {
    String pattern = FilePatterns.expandDirectory(filepattern, "*");
    if (isRemote(pattern)) {
      return OptionalLong.empty();
    }
    List<MatchResult.Metadata> files;
    try {
      files = FileSystems.match(pattern, EmptyMatchTreatment.DISALLOW).metadata();
    } catch (IOException e) {
      return OptionalLong.empty();
    }
    long total = 0;
    for (MatchResult.Metadata file : files) {
      total += countRecords(file.resourceId(), format, maxLineBytes);
    }
    return OptionalLong.of(total);
  }

  private static long countRecords(ResourceId file, RecordFormat format, long maxLineBytes) {
    long[] count = {0};
    try {
      RecordFileReader.of(file, format).count(maxLineBytes, n -> count[0] += n);
      return count[0];
    } catch (IOException | RuntimeException e) {
      return count[0] + 1; // PromptIO's one dead letter for the rest of the file
    }
  }

  /**
   * Every record of the files {@code filepattern} matches (none is fine), JSONL or Parquet told
   * apart as {@link RecordFormat#AUTO} does, in no particular order; returns how many lines did not
   * parse as JSON. Streams: one record in memory at a time.
   */
  public static long readRows(String filepattern, Consumer<JsonNode> rows) throws IOException {
    long[] unreadable = {0};
    for (MatchResult.Metadata file : FileSystems.match(filepattern, EmptyMatchTreatment.ALLOW).metadata()) {
      RecordFileReader.of(file.resourceId(), RecordFormat.AUTO).read(Long.MAX_VALUE, new RecordFileReader.Visitor() {
        @Override
        public void record(SourcePosition at, JsonNode record) {
          rows.accept(record);
        }

        @Override
        public void refused(SourcePosition at, ErrorKind kind, String message) {
          unreadable[0]++;
        }
      });
    }
    return unreadable[0];
  }
}
