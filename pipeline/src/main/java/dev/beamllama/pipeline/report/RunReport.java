package dev.beamllama.pipeline.report;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.io.RecordFiles;
import dev.beamllama.pipeline.JobSummary;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.fs.ResolveOptions.StandardResolveOptions;
import org.apache.beam.sdk.io.fs.ResourceId;

/**
 * The report of a finished job, {@code <output prefix>-report/}: {@code summary.json} and
 * {@code report.html}. Completion and dead-letter figures are read back from the shards the job
 * wrote, so they describe exactly what is on disk whatever the runner (a retried Flink task counts
 * twice in the metrics, never in the files); records read, resumed samples and wall time come from
 * the job's metrics, and the engine's activity over time from the launcher's telemetry when the
 * engine ran in its JVM.
 */
public final class RunReport {
  public static final String SUMMARY_JSON = "summary.json";
  public static final String REPORT_HTML = "report.html";

  private RunReport() {}

  /** Where the report of a job writing to {@code outputPrefix} goes. */
  public static String directoryOf(String outputPrefix) {
    return outputPrefix + "-report";
  }

  /** Reads the written shards and checks them against the job's metrics. */
  public static ReportData gather(ReportSettings settings, JobSummary summary, EngineActivity engine) throws IOException {
    CompletionStats completions = new CompletionStats();
    long unreadableCompletions = RecordFiles.readRows(settings.outputFiles(), completions::add);
    Map<String, Long> deadLetters = new TreeMap<>();
    long unreadableDeadLetters = RecordFiles.readRows(settings.errorFiles(), row -> deadLetters.merge(kind(row), 1L, Long::sum));

    List<String> warnings = new ArrayList<>();
    if (unreadableCompletions + completions.malformed() > 0) {
      warnings.add(String.format(Locale.ROOT, "%d line(s) of %s are not completion records and are left out of the figures",
          unreadableCompletions + completions.malformed(), settings.outputFiles()));
    }
    if (unreadableDeadLetters > 0) {
      warnings.add(String.format(Locale.ROOT, "%d line(s) of %s are not JSON and are left out of the dead-letter counts",
          unreadableDeadLetters, settings.errorFiles()));
    }
    if (completions.completions() != summary.completionsWritten()) {
      warnings.add(String.format(Locale.ROOT, "the job's metrics count %d completions written, the files hold %d "
          + "(metrics count retried work twice; the figures here are the files')", summary.completionsWritten(), completions.completions()));
    }
    long dead = deadLetters.values().stream().mapToLong(Long::longValue).sum();
    if (dead != summary.deadLetters()) {
      warnings.add(String.format(Locale.ROOT, "the job's metrics count %d dead letters, the files hold %d", summary.deadLetters(), dead));
    }
    return new ReportData(settings, summary, completions, deadLetters, engine, warnings);
  }

  /** Writes the report of {@code data} into {@code directory}; returns the HTML page's location. */
  public static String write(ReportData data, String directory) throws IOException {
    ResourceId dir = FileSystems.matchNewResource(directory, true);
    ResourceId html = dir.resolve(REPORT_HTML, StandardResolveOptions.RESOLVE_FILE);
    writeText(dir.resolve(SUMMARY_JSON, StandardResolveOptions.RESOLVE_FILE), SummaryJson.of(data), "application/json");
    writeText(html, ReportHtml.of(data, Plot.of(data), Instant.now()), "text/html");
    return html.toString();
  }

  private static String kind(JsonNode deadLetter) {
    JsonNode kind = deadLetter.get("kind");
    return kind != null && kind.isTextual() ? kind.asText() : "unknown";
  }

  private static void writeText(ResourceId file, String text, String mimeType) throws IOException {
    try (WritableByteChannel channel = FileSystems.create(file, mimeType);
        OutputStream out = Channels.newOutputStream(channel)) {
      out.write(text.getBytes(StandardCharsets.UTF_8));
    }
  }
}
