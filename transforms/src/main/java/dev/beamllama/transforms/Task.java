package dev.beamllama.transforms;

import java.util.Locale;

/**
 * What the job does with each record, and so which fields a record must carry: {@code chat}
 * ({@code messages}, or {@code user} and an optional {@code system}), {@code summarize}
 * ({@code text}), {@code qa} ({@code context} and {@code question}) or {@code complete} (a raw
 * {@code prompt}, no chat template).
 */
public enum Task {
  CHAT,
  SUMMARIZE,
  QA,
  COMPLETE;

  public String label() {
    return name().toLowerCase(Locale.ROOT);
  }
}
