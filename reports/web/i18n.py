"""The web app's words in Persian (the default, right to left) and English.

Every key has both translations side by side, so a page is never half translated; tests check
that every Persian text is Persian and that templates use only known keys.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES: tuple[str, ...] = ("fa", "en")
DIRECTION: Mapping[str, str] = {"fa": "rtl", "en": "ltr"}
_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

# key: (Persian, English)
CATALOGUE: dict[str, tuple[str, str]] = {
    "app.name": ("کال‌تریل", "Calltrail"),
    "lang.switch": ("English", "فارسی"),
    "lang.switch.title": ("Switch to English", "نمایش به فارسی"),
    "nav.report": ("جزئیات تماس‌ها", "Call details"),
    "nav.totals_agent": ("مجموع به تفکیک کارشناس", "Totals by agent"),
    "nav.totals_date": ("مجموع به تفکیک تاریخ", "Totals by date"),
    "nav.totals_number": ("مجموع به تفکیک شماره", "Totals by number"),
    "nav.ops": ("وضعیت دریافت تماس‌ها", "Ingestion status"),
    "nav.logout": ("خروج", "Log out"),
    "nav.signed_in_as": ("کاربر: {name}", "Signed in as {name}"),
    "login.title": ("ورود", "Log in"),
    "login.username": ("نام کاربری", "User name"),
    "login.password": ("گذرواژه", "Password"),
    "login.submit": ("ورود", "Log in"),
    "login.failed": ("نام کاربری یا گذرواژه نادرست است.", "Wrong user name or password."),
    "login.missing": ("نام کاربری و گذرواژه را وارد کنید.", "Enter your user name and password."),
    "login.throttled": (
        "تلاش‌های ناموفق زیادی انجام شده است. {minutes} دقیقه دیگر دوباره تلاش کنید.",
        "Too many failed attempts. Try again in {minutes} minute(s).",
    ),
    "logout.done": ("از سامانه خارج شدید.", "You have logged out."),
    "error.title": ("خطا", "Error"),
    "error.400": ("درخواست نادرست است.", "The request is not valid."),
    "error.403.title": ("دسترسی ندارید", "Access denied"),
    "error.403.roles": (
        "این صفحه فقط برای کاربرانی است که یکی از این نقش‌ها را دارند: {roles}.",
        "Only users holding one of these roles may see this page: {roles}.",
    ),
    "error.403.csrf": (
        "فرم منقضی شده یا از جای دیگری فرستاده شده است. صفحه را دوباره باز کنید و دوباره بفرستید.",
        "The form has expired or was sent from elsewhere. Reload the page and send it again.",
    ),
    "error.404": ("این صفحه پیدا نشد.", "This page does not exist."),
    "error.405": ("این روش درخواست برای این نشانی پذیرفته نیست.", "This request method is not allowed here."),
    "error.429.title": ("تلاش بیش از حد", "Too many attempts"),
    "error.500": (
        "خطایی در سامانه رخ داد؛ جزئیات آن ثبت شد. دوباره تلاش کنید.",
        "Something went wrong on our side; it has been logged. Please try again.",
    ),
    "error.db": (
        "پایگاه داده در دسترس نیست. کمی بعد دوباره تلاش کنید.",
        "The database is not reachable. Please try again shortly.",
    ),
    "error.back": ("بازگشت به صفحه اصلی", "Back to the start page"),
    "role.admin": ("مدیر سیستم", "System administrator"),
    "role.sales_manager": ("مدیر فروش", "Sales manager"),
    "role.crm_manager": ("مدیر ارتباط با مشتری", "CRM manager"),
    "role.support_manager": ("مدیر پشتیبانی", "Support manager"),
    "role.agent": ("کارشناس", "Agent"),
    "list.separator": ("، ", ", "),
    # The report form (filters.png)
    "report.title": ("جزئیات تماس‌ها", "Call details"),
    "totals_agent.title": ("مجموع تماس‌ها به تفکیک کارشناس", "Call totals by agent"),
    "totals_date.title": ("مجموع تماس‌ها به تفکیک تاریخ", "Call totals by date"),
    "totals_number.title": ("مجموع تماس‌ها به تفکیک شماره تلفن", "Call totals by phone number"),
    "form.period": ("بازه گزارش", "Report period"),
    "form.period.year": ("سالانه", "Yearly"),
    "form.period.season": ("فصلی", "Seasonal"),
    "form.period.month": ("ماهانه", "Monthly"),
    "form.period.custom": ("بازه دلخواه", "Custom range"),
    "form.calendar": ("تقویم", "Calendar"),
    "form.calendar.jalali": ("خورشیدی", "Jalali (Solar Hijri)"),
    "form.calendar.gregorian": ("میلادی", "Gregorian"),
    "form.year": ("سال", "Year"),
    "form.season": ("فصل", "Season"),
    "form.month": ("ماه", "Month"),
    "form.from": ("از تاریخ", "From"),
    "form.to": ("تا تاریخ", "To"),
    "form.date.placeholder": ("سال/ماه/روز", "year/month/day"),
    "form.date.open": ("انتخاب تاریخ", "Pick a date"),
    "form.breakdown": ("به تفکیک", "Breakdown"),
    "form.breakdown.day": ("روز", "Day"),
    "form.breakdown.month": ("ماه", "Month"),
    "form.breakdown.season": ("فصل", "Season (quarter)"),
    "form.breakdown.year": ("سال", "Year"),
    "form.agent": ("کارشناس", "Agent"),
    "form.agent.placeholder": ("نام کاربر", "User name"),
    "form.agent.search": ("جستجو", "Search"),
    "form.agent.clear": ("پاک کردن", "Clear"),
    "form.agent.none": ("کاربری پیدا نشد.", "No user found."),
    "form.agent.any": ("همه کارشناسان", "All agents"),
    "form.call_type": ("نوع تماس", "Call type"),
    "form.call_type.all": ("همه", "All"),
    "form.call_type.incoming": ("دریافتی", "Incoming"),
    "form.call_type.outgoing": ("گرفته شده", "Outgoing"),
    "form.call_type.missed": ("از دست رفته", "Missed"),
    "form.call_type.internal": ("داخلی", "Internal"),
    "form.call_type.all_internal": ("همه، با تماس‌های داخلی", "All, with internal calls"),
    "form.branch": ("شعبه", "Branch"),
    "form.branch.any": ("یک مورد را انتخاب کنید.", "Choose one."),
    "form.system": ("سیستم تلفنی", "Telephone system"),
    "form.system.any": ("همه سیستم‌های تلفنی", "All telephone systems"),
    "form.sort": ("مرتب‌سازی بر اساس", "Sort by"),
    "form.sort.number": ("شماره تلفن", "Phone number"),
    "form.sort.calls": ("تعداد تماس", "Number of calls"),
    "form.sort.talk": ("طول مکالمه", "Talk time"),
    # Filter errors in Persian, per field (the English page shows the report layer's own message).
    "invalid.period": ("بازه گزارش معتبر نیست.", "The report period is not valid."),
    "invalid.calendar": ("تقویم را از فهرست انتخاب کنید.", "Choose a calendar from the list."),
    "invalid.year": ("سال را درست انتخاب کنید.", "Choose a valid year."),
    "invalid.season": ("فصل را از فهرست انتخاب کنید.", "Choose a season from the list."),
    "invalid.month": ("ماه را از فهرست انتخاب کنید.", "Choose a month from the list."),
    "invalid.from": (
        "تاریخ شروع معتبر نیست؛ آن را به شکل ۱۴۰۳/۰۱/۱۵ بنویسید.", "The start date is not valid."
    ),
    "invalid.to": (
        "تاریخ پایان معتبر نیست یا پیش از تاریخ شروع است.", "The end date is not valid or is before the start."
    ),
    "invalid.by": (
        "این تفکیک برای این بازه مناسب نیست؛ تفکیک بزرگ‌تر یا بازه کوتاه‌تری انتخاب کنید.",
        "This breakdown does not suit the period.",
    ),
    "invalid.agent": ("کارشناسی با این نام کاربری پیدا نشد.", "No agent has this user name."),
    "invalid.type": ("نوع تماس را از فهرست انتخاب کنید.", "Choose a call type from the list."),
    "invalid.branch": ("این شعبه وجود ندارد.", "This branch does not exist."),
    "invalid.system": (
        "این سیستم تلفنی وجود ندارد یا در شعبه انتخاب‌شده نیست.",
        "This telephone system does not exist or is not in the chosen branch.",
    ),
    "invalid.sort": ("ترتیب را از فهرست انتخاب کنید.", "Choose a sort order from the list."),
    "invalid.format": ("فرمت فایل را از فهرست انتخاب کنید.", "Choose a file format from the list."),
    "form.format": ("فرمت فایل", "File format"),
    "form.download": ("دریافت گزارش", "Get report"),
    "form.show": ("نمایش", "Show"),
    "form.errors": ("لطفاً موارد مشخص‌شده را اصلاح کنید.", "Please correct the marked fields."),
    "report.page": ("صفحه {page} از {pages}", "Page {page} of {pages}"),
    "report.previous": ("صفحه قبل", "Previous page"),
    "report.next": ("صفحه بعد", "Next page"),
    "report.empty": ("در این بازه تماسی نیست.", "No calls in this period."),
    "chain.title": ("مسیر گردش تماس", "Transfer chain"),
    "chain.open": ("مسیر گردش این تماس", "This call's transfer chain"),
    "chain.close": ("بستن", "Close"),
    "chain.loading": ("در حال بارگذاری…", "Loading…"),
    "chain.failed": ("بارگذاری انجام نشد.", "Could not load it."),
    "picker.previous": ("ماه قبل", "Previous month"),
    "picker.next": ("ماه بعد", "Next month"),
    "picker.today": ("امروز", "Today"),
    # Operations
    "ops.title": ("وضعیت دریافت تماس‌ها", "Ingestion status"),
    "ops.intro": (
        "وضعیت هر سیستم تلفنی از پایگاه داده و، در صورت تنظیم، از نقطه سلامت سرویس دریافت.",
        "Each telephone system's status, from the database and, when configured, the daemon's health endpoint.",
    ),
    "ops.system": ("سیستم تلفنی", "Telephone system"),
    "ops.branch": ("شعبه", "Branch"),
    "ops.connected": ("اتصال", "Connected"),
    "ops.yes": ("متصل", "Yes"),
    "ops.no": ("قطع", "No"),
    "ops.unknown": ("نامشخص", "Unknown"),
    "ops.last_event": ("آخرین رویداد", "Last event"),
    "ops.last_call": ("آخرین تماس ذخیره‌شده", "Last call stored"),
    "ops.calls_today": ("تماس‌های امروز", "Calls today"),
    "ops.calls_stored": ("کل تماس‌های ذخیره‌شده", "Calls stored"),
    "ops.backlog": ("صف ثبت‌نشده", "Journal backlog"),
    "ops.bytes": ("{n} بایت", "{n} bytes"),
    "ops.open_calls": ("تماس‌های در جریان", "Open calls"),
    "ops.login_failed": ("ورود رد شد", "Login refused"),
    "ops.never": ("هرگز", "Never"),
    "ops.none": ("هیچ سیستم تلفنی‌ای تعریف نشده است.", "No telephone system is defined."),
    "ops.health.ok": ("سرویس دریافت پاسخ می‌دهد ({url}).", "The ingest daemon answers ({url})."),
    "ops.health.failed": (
        "سرویس دریافت در {url} پاسخ نداد: {error}",
        "The ingest daemon did not answer at {url}: {error}",
    ),
    "ops.health.off": (
        "نشانی سلامت سرویس دریافت تنظیم نشده است؛ فقط داده‌های پایگاه داده نمایش داده می‌شود.",
        "No health URL of the ingest daemon is configured; only the database's view is shown.",
    ),
    "ops.time_zone": ("منطقه زمانی", "Time zone"),
}

# Texts that are the same in both languages on purpose (format names).
SAME_IN_BOTH = frozenset({"PDF", "XLSX", "CSV", "HTML"})

MESSAGES: dict[str, dict[str, str]] = {
    "fa": {key: texts[0] for key, texts in CATALOGUE.items()},
    "en": {key: texts[1] for key, texts in CATALOGUE.items()},
}

# Week-day initials as the date picker shows them: a Jalali week starts on Saturday, a Gregorian one on Monday.
WEEKDAYS: dict[str, dict[str, tuple[str, ...]]] = {
    "jalali": {"fa": ("ش", "ی", "د", "س", "چ", "پ", "ج"), "en": ("Sa", "Su", "Mo", "Tu", "We", "Th", "Fr")},
    "gregorian": {"fa": ("د", "س", "چ", "پ", "ج", "ش", "ی"), "en": ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")},
}


def language(value: object, default: str = "fa") -> str:
    """`value` when it is a supported language code, else `default`."""
    return value if isinstance(value, str) and value in LANGUAGES else default


def translate(lang: str, key: str, **values: object) -> str:
    """The text of `key` in `lang`, with {placeholders} filled; a missing key is a bug, so it raises."""
    text = MESSAGES[language(lang)][key]
    return text.format(**values) if values else text


def digits(lang: str, value: object) -> str:
    """`value` as text, with Persian digits (and thousands separator) when the language is Persian."""
    text = str(value)
    return text.translate(_PERSIAN_DIGITS).replace(",", "٬") if lang == "fa" else text


def role_names(lang: str, roles: tuple[str, ...] | frozenset[str] | list[str]) -> str:
    """The roles' display names joined in the language's list style, in a stable order."""
    order = ("admin", "sales_manager", "crm_manager", "support_manager", "agent")
    ordered = [r for r in order if r in roles]
    return translate(lang, "list.separator").join(translate(lang, f"role.{r}") for r in ordered)
