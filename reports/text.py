"""How report values are written: Persian or English words, digits, dates, times and durations.

One `Formatter` per report carries the language and calendar, so every renderer writes a date, a
duration or a count the same way. Rounding is half up everywhere (5/2 is 3, 8.5 s is 9 s), as the
seed's sibling reports do.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from reports import calendar as cal
from reports.calendar import Calendar

PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
# One translate() instead of translate() and replace(): Persian digits and thousands separator (text),
# and also the decimal separator (numbers).
PERSIAN_TEXT = str.maketrans({**{str(d): chr(0x6F0 + d) for d in range(10)}, ",": "٬"})
PERSIAN_NUMBER = str.maketrans({**{str(d): chr(0x6F0 + d) for d in range(10)}, ",": "٬", ".": "٫"})

LABELS: dict[str, dict[str, str]] = {
    "title.details": {"fa": "گزارش {by} جزئیات تماس‌ها", "en": "{by} call details report"},
    "title.agent": {"fa": "گزارش مجموع تماس‌ها به تفکیک کارشناسان", "en": "Call totals by agent"},
    "title.date": {"fa": "گزارش {by} مجموع تماس‌ها به تفکیک تاریخ", "en": "{by} call totals by date"},
    "title.number": {"fa": "گزارش مجموع تماس‌ها به تفکیک شماره تلفن", "en": "Call totals by phone number"},
    "title.chain": {"fa": "زنجیره انتقال تماس", "en": "Call transfer chain"},
    "by.day": {"fa": "روزانه", "en": "Daily"},
    "by.month": {"fa": "ماهانه", "en": "Monthly"},
    "by.season": {"fa": "فصلی", "en": "Seasonal"},
    "by.year": {"fa": "سالانه", "en": "Yearly"},
    "made_at": {"fa": "تاریخ گزارش", "en": "Report date"},
    "builtin_admin": {"fa": "مدیر سیستم", "en": "System administrator"},
    "made_by": {"fa": "تهیه‌کننده", "en": "Made by"},
    "from": {"fa": "از تاریخ", "en": "From"},
    "to": {"fa": "تا تاریخ", "en": "To"},
    "filter.by": {"fa": "به تفکیک", "en": "Breakdown"},
    "filter.agent": {"fa": "کارشناس", "en": "Agent"},
    "filter.type": {"fa": "نوع تماس", "en": "Call type"},
    "filter.branch": {"fa": "شعبه", "en": "Branch"},
    "filter.system": {"fa": "سیستم تلفنی", "en": "Telephone system"},
    "filter.calendar": {"fa": "تقویم", "en": "Calendar"},
    "filter.tz": {"fa": "منطقه زمانی", "en": "Time zone"},
    "filter.sort": {"fa": "مرتب‌سازی", "en": "Sort by"},
    "all": {"fa": "همه", "en": "All"},
    "bd.day": {"fa": "روز", "en": "day"},
    "bd.month": {"fa": "ماه", "en": "month"},
    "bd.season": {"fa": "فصل", "en": "season"},
    "bd.year": {"fa": "سال", "en": "year"},
    "calendar.jalali": {"fa": "هجری شمسی", "en": "Jalali"},
    "calendar.gregorian": {"fa": "میلادی", "en": "Gregorian"},
    "sort.number": {"fa": "شماره", "en": "number"},
    "sort.calls": {"fa": "تعداد تماس", "en": "calls"},
    "sort.talk": {"fa": "طول مکالمه", "en": "talk time"},
    "col.row": {"fa": "ردیف", "en": "#"},
    "col.date": {"fa": "تاریخ", "en": "Date"},
    "col.time": {"fa": "زمان", "en": "Time"},
    "col.caller": {"fa": "تماس‌گیرنده", "en": "Caller"},
    "col.caller_name": {"fa": "نام تماس‌گیرنده", "en": "Caller name"},
    "col.callee": {"fa": "مقصد", "en": "Callee"},
    "col.agent": {"fa": "نام کارشناس", "en": "Agent"},
    "col.identity": {"fa": "مرتبط با", "en": "Related to"},
    "col.type": {"fa": "نوع تماس", "en": "Call type"},
    "col.transfers": {"fa": "تعداد گردش", "en": "Transfers"},
    "col.wait": {"fa": "انتظار", "en": "Wait"},
    "col.talk": {"fa": "مدت مکالمه", "en": "Talk time"},
    "col.system": {"fa": "سیستم تلفنی", "en": "System"},
    "col.bucket": {"fa": "بازه", "en": "Period"},
    "col.number": {"fa": "شماره تلفن", "en": "Phone number"},
    "col.count": {"fa": "تعداد", "en": "Calls"},
    "col.talk_short": {"fa": "طول مکالمه", "en": "Talk time"},
    "col.received": {"fa": "تماس دریافتی", "en": "Received"},
    "col.placed": {"fa": "تماس گرفته شده", "en": "Placed"},
    "col.internal": {"fa": "تماس داخلی", "en": "Internal"},
    "col.missed": {"fa": "تعداد تماس از دست رفته", "en": "Missed"},
    "col.call_id": {"fa": "شناسه تماس", "en": "Call ID"},
    "col.seq": {"fa": "نوبت", "en": "Turn"},
    "col.extension": {"fa": "داخلی", "en": "Extension"},
    "col.began_by": {"fa": "شروع با", "en": "Began by"},
    "col.ring": {"fa": "زمان زنگ", "en": "Ring"},
    "col.answer": {"fa": "پاسخ", "en": "Answered at"},
    "col.end": {"fa": "پایان", "en": "Ended at"},
    "col.reason": {"fa": "علت", "en": "Reason"},
    "col.outcome": {"fa": "نتیجه", "en": "Outcome"},
    "sum": {"fa": "مجموع", "en": "Sum"},
    "average": {"fa": "میانگین", "en": "Average"},
    "total": {"fa": "جمع کل دوره", "en": "Whole period"},
    "t.incoming": {"fa": "تعداد تماس ورودی", "en": "Incoming calls"},
    "t.outgoing": {"fa": "تعداد تماس خروجی", "en": "Outgoing calls"},
    "t.missed": {"fa": "تعداد تماس از دست رفته", "en": "Missed calls"},
    "t.internal": {"fa": "تعداد تماس داخلی", "en": "Internal calls"},
    "t.answered": {"fa": "تعداد تماس پاسخ داده شده", "en": "Answered calls"},
    "t.incoming_talk": {"fa": "زمان کل تماس ورودی", "en": "Incoming talk time"},
    "t.outgoing_talk": {"fa": "زمان کل تماس خروجی", "en": "Outgoing talk time"},
    "t.avg_incoming_talk": {"fa": "میانگین مکالمه ورودی", "en": "Average incoming talk"},
    "t.avg_outgoing_talk": {"fa": "میانگین مکالمه خروجی", "en": "Average outgoing talk"},
    "t.avg_wait": {"fa": "میانگین انتظار", "en": "Average wait"},
    "t.avg_transfers": {"fa": "میانگین تعداد گردش", "en": "Average transfers"},
    "kind.incoming": {"fa": "تماس دریافتی", "en": "Incoming"},
    "kind.outgoing": {"fa": "تماس گرفته شده", "en": "Outgoing"},
    "kind.missed": {"fa": "تماس از دست رفته", "en": "Missed"},
    "kind.internal": {"fa": "تماس داخلی", "en": "Internal"},
    "reason.abandoned": {"fa": "قطع توسط تماس‌گیرنده", "en": "abandoned"},
    "reason.no_answer": {"fa": "بی‌پاسخ", "en": "no answer"},
    "reason.busy": {"fa": "مشغول", "en": "busy"},
    "reason.rejected": {"fa": "رد شده", "en": "rejected"},
    "reason.failed": {"fa": "ناموفق", "en": "failed"},
    "reason.voicemail": {"fa": "پیغام‌گیر", "en": "voicemail"},
    "reason.ivr": {"fa": "منوی صوتی", "en": "IVR"},
    "reason.unknown": {"fa": "نامشخص", "en": "unknown"},
    "began.answered": {"fa": "پاسخ", "en": "answered"},
    "began.queue": {"fa": "صف", "en": "queue"},
    "began.blind_transfer": {"fa": "انتقال مستقیم", "en": "blind transfer"},
    "began.attended_transfer": {"fa": "انتقال با هماهنگی", "en": "attended transfer"},
    "began.pickup": {"fa": "برداشتن", "en": "pickup"},
    "ring.answered": {"fa": "پاسخ داده شد", "en": "answered"},
    "ring.no_answer": {"fa": "بی‌پاسخ", "en": "no answer"},
    "ring.busy": {"fa": "مشغول", "en": "busy"},
    "ring.cancelled": {"fa": "لغو شد", "en": "cancelled"},
    "ring.answered_elsewhere": {"fa": "پاسخ در داخلی دیگر", "en": "answered elsewhere"},
    "ring.rejected": {"fa": "رد شد", "en": "rejected"},
    "ring.failed": {"fa": "ناموفق", "en": "failed"},
    "several": {"fa": "چند هویت با این شماره", "en": "several identities share this number"},
    "unmapped": {"fa": "بدون کارشناس", "en": "no agent"},
    "unknown_number": {"fa": "شماره نامشخص", "en": "unknown number"},
    "page": {"fa": "صفحه {x} از {y}", "en": "page {x} of {y}"},
    "chart": {"fa": "تعداد تماس‌ها در هر بازه", "en": "Calls per period"},
    "no_calls": {"fa": "در این بازه تماسی نیست.", "en": "No calls in this period."},
}


def half_up(value: Decimal | float | int, places: int = 0) -> Decimal:
    """`value` rounded half up (2.5 -> 3) to `places` decimals."""
    quantum = Decimal(1).scaleb(-places)
    return Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)


_HALF = Decimal("0.5")
# "00".."59": a table lookup instead of f"{n:02d}", which costs most of a duration's formatting.
TWO_DIGITS: tuple[str, ...] = tuple(f"{n:02d}" for n in range(60))


def duration(seconds: Decimal | float | int | None) -> str:
    """H:MM:SS with uncapped, thousands-separated hours (`15,623:30:36`); empty for None."""
    if seconds is None:
        return ""
    # Half up to the second; int() truncates, which is floor for the non-negative durations here.
    total = int(seconds + _HALF) if isinstance(seconds, Decimal) else int(half_up(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    # Below 1,000 hours there is no thousands separator to write (f"{:,}" is slow too).
    return f"{hours if -1000 < hours < 1000 else f'{hours:,}'}:{TWO_DIGITS[minutes]}:{TWO_DIGITS[secs]}"


class Formatter:
    """Writes labels, numbers, dates and durations in one language and calendar."""

    def __init__(self, lang: str, calendar: Calendar) -> None:
        self.lang = lang
        self.calendar = calendar
        self.rtl = lang == "fa"

    def t(self, key: str, **values: object) -> str:
        """The label `key` in this language, with `{name}` placeholders filled."""
        text = LABELS[key][self.lang]
        return text.format(**values) if values else text

    def digits(self, text: object) -> str:
        """Persian digits (and the Persian thousands separator) in Persian output."""
        value = str(text)
        return value.translate(PERSIAN_TEXT) if self.rtl else value

    def num(self, value: int | Decimal | None) -> str:
        """An integer or decimal with thousands separators."""
        if value is None:
            return ""
        text = f"{value:,}"
        return text.translate(PERSIAN_NUMBER) if self.rtl else text

    def duration(self, seconds: Decimal | float | int | None) -> str:
        """H:MM:SS (see `duration`)."""
        return self.digits(duration(seconds))

    def date(self, day: date) -> str:
        """The date in this report's calendar."""
        return self.digits(cal.format_date(day, self.calendar))

    def time(self, moment: datetime) -> str:
        """HH:MM:SS of a local time."""
        # Not strftime: several times slower, for the same text.
        return self.digits(f"{TWO_DIGITS[moment.hour]}:{TWO_DIGITS[moment.minute]}:{TWO_DIGITS[moment.second]}")

    def datetime(self, moment: datetime) -> str:
        """Date and time of a local time."""
        return f"{self.date(moment.date())} {self.time(moment)}"
