package dev.beamllama.pipeline.report;

import dev.beamllama.model.sampling.SamplingParams;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code report.html}: one self-contained page (styles inline, plots as base64 PNG data URLs), so it
 * can be mailed, archived or opened from any machine without the files next to it.
 */
final class ReportHtml {
  private ReportHtml() {}

  static String of(ReportData data, List<Plot> plots, Instant written) {
    ReportSettings s = data.settings();
    CompletionStats c = data.completions();
    StringBuilder h = new StringBuilder(64 * 1024);
    h.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        .append("<title>beam-llama run report: ").append(esc(s.modelName())).append(", ").append(esc(s.task())).append("</title>\n")
        .append("<style>\n")
        .append("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}\n")
        .append("table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.25em .8em;text-align:left}\n")
        .append("td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1.5em 0}img{max-width:100%;height:auto}\n")
        .append(".unavailable{background:#f6f6f6;border-left:4px solid #999;padding:.6em 1em;margin:1.5em 0}\n")
        .append(".warning{background:#fff4e5;border-left:4px solid #e69500;padding:.6em 1em}\n")
        .append("</style>\n</head>\n<body>\n");
    h.append("<h1>beam-llama run report</h1>\n<p>Model <b>").append(esc(s.modelName())).append("</b>, task <b>").append(esc(s.task()))
        .append("</b>, on the ").append(esc(s.runner())).append("; written ").append(esc(written.toString())).append(".</p>\n");
    for (String warning : data.warnings()) {
      h.append("<p class=\"warning\">").append(esc(warning)).append("</p>\n");
    }

    h.append("<h2>Run</h2>\n<table>\n");
    row(h, "records read", data.summary().recordsRead());
    row(h, "completions written (one per sample)", c.completions());
    row(h, "dead letters", data.deadLetters());
    if (data.summary().samplesResumed() > 0) {
      row(h, "samples already written by the run resumed from", data.summary().samplesResumed());
    }
    if (data.summary().samplesFromJournal() > 0) {
      row(h, "samples taken from the journal of an earlier attempt", data.summary().samplesFromJournal());
    }
    row(h, "prompt tokens", c.promptTokens());
    row(h, "prompt tokens computed (the prefix cache's are not)", data.summary().promptTokensComputed());
    row(h, "completion tokens", c.completionTokens());
    row(h, "wall time", String.format(Locale.ROOT, "%.1f s", data.summary().wallSeconds()));
    row(h, "completion tokens per second of wall time", String.format(Locale.ROOT, "%.1f", data.completionTokensPerSecond()));
    if (c.latencyCount() > 0) {
      row(h, "latency per sample (mean / min / max)", String.format(Locale.ROOT, "%.0f / %.0f / %.0f ms",
          c.latencyMeanMs(), c.latencyMinMs(), c.latencyMaxMs()));
    }
    row(h, "engine", data.engine().engines().isEmpty() ? s.engineRequested() + " (as asked; the engine ran in the workers)"
        : String.join("; ", data.engine().engines()));
    row(h, "engine loads", data.summary().engineLoads());
    h.append("</table>\n");

    h.append("<h2>Finish reasons</h2>\n");
    counts(h, c.finishReasons(), "no completion was written");
    h.append("<h2>Dead letters by kind</h2>\n");
    counts(h, data.deadLettersByKind(), "none: every record read was generated (or already done)");

    h.append("<h2>Plots</h2>\n");
    for (Plot plot : plots) {
      if (plot.png() != null) {
        h.append("<figure id=\"plot-").append(plot.id()).append("\">\n<img data-plot=\"").append(plot.id()).append("\" alt=\"")
            .append(esc(plot.title())).append("\" width=\"").append(ReportCharts.WIDTH).append("\" height=\"").append(ReportCharts.HEIGHT)
            .append("\" src=\"data:image/png;base64,").append(Base64.getEncoder().encodeToString(plot.png())).append("\">\n<figcaption>")
            .append(esc(plot.caption())).append("</figcaption>\n</figure>\n");
      } else {
        h.append("<p class=\"unavailable\" data-plot-unavailable=\"").append(plot.id()).append("\"><b>").append(esc(plot.title()))
            .append("</b> is not available for this run: ").append(esc(plot.unavailable())).append(".</p>\n");
      }
    }

    SamplingParams p = s.sampling();
    h.append("<h2>Settings</h2>\n<table>\n");
    row(h, "model directory", s.modelPath());
    row(h, "engine asked for", s.engineRequested() + ", --maxNumSeqs " + flag(s.maxNumSeqs()) + ", --maxBatchTokens " + flag(s.maxBatchTokens()));
    row(h, "sampling (records may override)", String.format(Locale.ROOT,
        "temperature %s, top_k %d, top_p %s, repetition_penalty %s, max_new_tokens %d, seed %d",
        p.temperature(), p.topK(), p.topP(), p.repetitionPenalty(), p.maxNewTokens(), p.seed()));
    row(h, "input", s.input());
    row(h, "completions", s.outputFiles());
    row(h, "dead letters", s.errorFiles());
    if (s.resumeFrom() != null) {
      row(h, "resumed from", s.resumeFrom());
    }
    h.append("</table>\n</body>\n</html>\n");
    return h.toString();
  }

  /** A sizing flag's value as given: 0 leaves it to the engine, whose choice the engine row states. */
  private static String flag(int value) {
    return value > 0 ? Integer.toString(value) : "the engine's default";
  }

  private static void counts(StringBuilder h, Map<String, Long> counts, String none) {
    if (counts.isEmpty()) {
      h.append("<p>").append(esc(none)).append(".</p>\n");
      return;
    }
    h.append("<table>\n");
    counts.forEach((name, n) -> row(h, name, n));
    h.append("</table>\n");
  }

  private static void row(StringBuilder h, String name, long value) {
    h.append("<tr><th>").append(esc(name)).append("</th><td class=\"n\">").append(String.format(Locale.ROOT, "%,d", value))
        .append("</td></tr>\n");
  }

  private static void row(StringBuilder h, String name, String value) {
    h.append("<tr><th>").append(esc(name)).append("</th><td>").append(esc(value)).append("</td></tr>\n");
  }

  static String esc(String text) {
    if (text == null) {
      return "";
    }
    StringBuilder s = new StringBuilder(text.length());
    for (char ch : text.toCharArray()) {
      switch (ch) {
        case '<' -> s.append("&lt;");
        case '>' -> s.append("&gt;");
        case '&' -> s.append("&amp;");
        case '"' -> s.append("&quot;");
        case '\'' -> s.append("&#39;");
        default -> s.append(ch);
      }
    }
    return s.toString();
  }
}
