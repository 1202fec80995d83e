// The console's only script: copy buttons. Pages work without it.
// A button with data-copy="<element id>" copies that element's value or text.
for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", async () => {
    const target = document.getElementById(button.dataset.copy);
    if (!target) return;
    const text = "value" in target ? target.value : target.textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      if ("select" in target) target.select();
      button.textContent = "Select and copy (Ctrl+C)";
    }
  });
}
